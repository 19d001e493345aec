// A workspace package the app imports: proves the install links workspace packages.
exports.greeting = function greeting(name) {
  return `Hello from the workspace, ${name}!`;
};
