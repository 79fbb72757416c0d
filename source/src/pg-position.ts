/**
 * A Postgres source's positions, ordered as byte strings:
 *
 *   GGGG:LLLLLLLLLLLLLLLL.PPPP   a streamed transaction: commit LSN, part
 *   GGGG:LLLLLLLLLLLLLLLL-PPPP   a part of a snapshot taken at LSN ('-' sorts before '.')
 *   GGGG:LLLLLLLLLLLLLLLL-9999   that snapshot complete: streaming continues from LSN
 *
 * GGGG, the generation, grows by one at every snapshot (a first run, a
 * resync): a resync onto another database (whose LSNs may be smaller) still
 * sorts after everything recorded before it, and the LSNs of two WAL
 * histories are never compared.
 */
export interface PgPosition {
  gen: number;
  /** 16 upper-case hex digits. */
  lsn: string;
  snapshot: boolean;
  part: number;
}

export const SNAPSHOT_DONE = 9999;

/** "16/B374D848" → "00000016B374D848". */
export function lsnHex(lsn: string): string {
  const [hi, lo] = lsn.split('/');
  return `${hi!.toUpperCase().padStart(8, '0')}${lo!.toUpperCase().padStart(8, '0')}`;
}

/** "00000016B374D848" → "16/B374D848". */
export function hexLsn(hex: string): string {
  return `${hex.slice(0, 8).replace(/^0+(?=.)/, '')}/${hex.slice(8).replace(/^0+(?=.)/, '')}`;
}

export const formatPosition = (p: PgPosition): string =>
  `${String(p.gen).padStart(4, '0')}:${p.lsn}${p.snapshot ? '-' : '.'}${String(p.part).padStart(4, '0')}`;

export function parsePosition(s: string): PgPosition | undefined {
  const m = /^(\d{4}):([0-9A-F]{16})([.-])(\d{4})$/.exec(s);
  return m ? { gen: Number(m[1]), lsn: m[2]!, snapshot: m[3] === '-', part: Number(m[4]) } : undefined;
}

/** Whether the recorded position says the snapshot of its generation finished (streaming may resume). */
export const resumable = (p: PgPosition): boolean => !p.snapshot || p.part === SNAPSHOT_DONE;
