import type { Metadata } from "next";

export const metadata: Metadata = { title: "Log in · WorkBot" };

export default function LoginPage() {
  return (
    <main>
      <h1>Log in</h1>
      <form method="post" action="/login">
        <p>
          <label>
            Email <input type="email" name="email" autoComplete="username" required />
          </label>
        </p>
        <p>
          <label>
            Password{" "}
            <input type="password" name="password" autoComplete="current-password" required />
          </label>
        </p>
        <button type="submit">Log in</button>
      </form>
    </main>
  );
}
