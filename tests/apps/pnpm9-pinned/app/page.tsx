export default function Home() {
  return (
    <main>
      <div>Hello from pnpm 9!</div>
    </main>
  );
}
