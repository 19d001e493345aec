import Link from "next/link";
import Counter from "./counter";

export default function HomePage() {
  return (
    <main>
      <h1>WorkBot</h1>
      <p>A small Next.js app served by a custom HTTP + WebSocket server.</p>
      <Counter />
      <p>
        <Link href="/login">Log in</Link> · <a href="/api/health">Health</a>
      </p>
    </main>
  );
}
