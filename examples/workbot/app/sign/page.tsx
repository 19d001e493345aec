import { redirect } from "next/navigation";

// A Server Action with a closure: Next encrypts `issued` into the form with the app's
// Server Actions key, and the action's id is salted with that key. The form rendered by one
// server (or release) posts to another only when both share the key, as hardenkit arranges:
// the answer is a 303 to /sign?signed=... naming the release that rendered the form and the
// one that ran the action.
export const dynamic = "force-dynamic";

export default async function SignPage({
  searchParams,
}: {
  searchParams: Promise<{ signed?: string }>;
}) {
  const { signed } = await searchParams;
  const issued = `${Date.now()}.${process.env.NEXT_DEPLOYMENT_ID || "none"}`;

  async function sign(form: FormData) {
    "use server";
    const name = String(form.get("name") ?? "").slice(0, 40) || "someone";
    const by = process.env.NEXT_DEPLOYMENT_ID || "none";
    redirect(`/sign?signed=${encodeURIComponent(`${name}.${issued}.${by}`)}`);
  }

  return (
    <main>
      <h1>Guest book</h1>
      {signed ? <p id="signed">Signed: {signed}</p> : null}
      <form action={sign}>
        <input name="name" defaultValue="guest" />
        <button type="submit">Sign</button>
      </form>
    </main>
  );
}
