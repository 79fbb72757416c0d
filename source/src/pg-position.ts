/**
 * A Postgres source's positions, ordered as byte strings:
 *
 *   GGGG:SSSSSSSSSSSSSSSSSSSS:LLLLLLLLLLLLLLLL.PPPP   a streamed transaction: commit LSN, part
 *   GGGG:SSSSSSSSSSSSSSSSSSSS:LLLLLLLLLLLLLLLL-PPPP   a part of a snapshot taken at LSN ('-' sorts before '.')
 *   GGGG:SSSSSSSSSSSSSSSSSSSS:LLLLLLLLLLLLLLLL-9999   that snapshot complete: streaming continues from LSN
 *
 * GGGG, the generation, grows by one at every snapshot (a first run, a
 * resync): a resync onto another database (whose LSNs may be smaller) still
 * sorts after everything recorded before it, and the LSNs of two WAL
 * histories are never compared. S…S is the database cluster's system
 * identifier (IDENTIFY_SYSTEM), the same for a whole generation: a source
 * pointed at another cluster notices before it streams anything.
 */
export interface PgPosition {
  gen: number;
  /** The cluster's system identifier, 20 digits. */
  system: string;
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
  `${String(p.gen).padStart(4, '0')}:${p.system.padStart(20, '0')}:${p.lsn}${p.snapshot ? '-' : '.'}${String(p.part).padStart(4, '0')}`;

export function parsePosition(s: string): PgPosition | undefined {
  const m = /^(\d{4}):(\d{20}):([0-9A-F]{16})([.-])(\d{4})$/.exec(s);
  return m ? { gen: Number(m[1]), system: m[2]!.replace(/^0+(?=.)/, ''), lsn: m[3]!, snapshot: m[4] === '-', part: Number(m[5]) } : undefined;
}

/** Whether the recorded position says the snapshot of its generation finished (streaming may resume). */
export const resumable = (p: PgPosition): boolean => !p.snapshot || p.part === SNAPSHOT_DONE;
