export default function Home() {
  return (
    <main>
      <div>Hello from yarn 4!</div>
    </main>
  );
}
