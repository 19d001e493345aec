// An ISR page (molecule/hostile_app): regenerated at most every 2 s, by an app whose release
// is read-only. The time it was rendered shows whether it was.
export const revalidate = 2;

export default function Isr() {
  return (
    <main>
      <p id="rendered">rendered-at:{Date.now()}:end</p>
    </main>
  );
}
