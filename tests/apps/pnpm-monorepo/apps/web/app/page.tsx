import { greeting } from "@repo/greeting";

export default function Home() {
  return (
    <main>
      <div>{greeting("web")}</div>
    </main>
  );
}
