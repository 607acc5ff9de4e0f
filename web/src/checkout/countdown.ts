/** The hold's countdown: "14:59", "1:00:00"; what is said when. */

/** Remaining time as `m:ss` (or `h:mm:ss` from an hour), rounded down to the second; 0 floors at "0:00". */
export function formatRemaining(ms: number): string {
  const total = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const ss = String(s).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

export function holdText(remainingMs: number): string {
  return remainingMs <= 0 ? 'Your hold has expired: the items were released' : `Your items are held for ${formatRemaining(remainingMs)}`;
}

/** Milestones (seconds left) at which the remaining time is announced to screen readers. */
export const ANNOUNCE_AT_S = [300, 60, 30] as const;

/**
 * The announcement due when the countdown goes from `prevMs` to `nowMs` remaining, if any:
 * one at each milestone crossed (the smallest wins), and one at expiry.
 */
export function countdownAnnouncement(prevMs: number, nowMs: number): string | null {
  if (prevMs > 0 && nowMs <= 0) return 'Your hold has expired: the items were released.';
  let crossed: number | null = null;
  for (const s of ANNOUNCE_AT_S) {
    if (prevMs > s * 1000 && nowMs <= s * 1000 && nowMs > 0) crossed = s;
  }
  if (crossed === null) return null;
  return crossed >= 60
    ? `Your items are held for ${crossed / 60} more minute${crossed === 60 ? '' : 's'}.`
    : `Your items are held for ${crossed} more seconds.`;
}
