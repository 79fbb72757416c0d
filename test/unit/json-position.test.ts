import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { JSON_POSITION_SCAN_LIMIT, describeJsonError, jsonErrorOffset, lineAndColumn } from '@factsync/shared';

function parseError(text: string): string {
  try {
    JSON.parse(text);
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error(`${text} is valid JSON`);
}

/** The first offset at which the text can no longer be completed: checked by trying every prefix. */
function firstBadOffset(text: string): number | null {
  const broken = (n: number): boolean => {
    const m = (() => { try { JSON.parse(text.slice(0, n)); return null; } catch (e) { return (e as Error).message; } })();
    if (m === null || m.startsWith('Unexpected end of JSON input')) return false;
    const at = /at position (\d+)/.exec(m);
    return !(at && Number(at[1]) >= n);
  };
  for (let n = 1; n <= text.length; n++) if (broken(n)) return n - 1;
  return null;
}

describe('where a JSON body breaks', () => {
  it('names the position, line and column of an unexpected token (which Node 20 does not)', () => {
    const text = '{"ops": [\n  {"op": "upsert", "type": "user", "key": }\n]}';
    const message = describeJsonError(text, parseError(text));
    expect(message).toMatch(/^Unexpected token '\}', [\s\S]* is not valid JSON, at position 52 \(line 2, column 43\)$/);
    expect(text[52]).toBe('}');
  });

  it('adds line and column where the parser gave a position', () => {
    const text = '{\n"a": 1 "b": 2}';
    expect(describeJsonError(text, parseError(text))).toBe("Expected ',' or '}' after property value in JSON at position 9 (line 2, column 8)");
  });

  it('says nothing more of a body that only ends too soon, or of one too long to bisect cheaply', () => {
    expect(describeJsonError('{"a": [1, 2', 'Unexpected end of JSON input')).toBe('Unexpected end of JSON input');
    const long = `[${'1,'.repeat(JSON_POSITION_SCAN_LIMIT)}]`;
    expect(jsonErrorOffset(long, parseError(long))).toBeNull();
  });

  it('finds the same offset as trying every prefix, on JSON broken at a random place', () => {
    let bisected = 0;
    fc.assert(
      fc.property(fc.json({ maxDepth: 3 }), fc.nat(), fc.constantFrom('}', ']', ',', ':', 'x', '"', ' ,}'), (json, at, junk) => {
        const cut = at % (json.length + 1);
        const text = json.slice(0, cut) + junk + json.slice(cut);
        let message: string;
        try {
          JSON.parse(text);
          return; // the junk happened to fit
        } catch (e) {
          message = (e as Error).message;
        }
        const offset = jsonErrorOffset(text, message);
        const expected = firstBadOffset(text);
        if (/at position/.test(message) || expected === null) return; // the parser's own position, or only the end is missing
        bisected++;
        expect(offset).toBe(expected);
      }),
      { numRuns: 300, seed: 20261201 },
    );
    expect(bisected).toBeGreaterThan(30); // the property exercised the bisection, not only the parser's positions
  });

  it('counts lines from 1 and columns from 1', () => {
    expect(lineAndColumn('ab\ncd\nef', 0)).toBe('line 1, column 1');
    expect(lineAndColumn('ab\ncd\nef', 4)).toBe('line 2, column 2');
    expect(lineAndColumn('ab\ncd\nef', 6)).toBe('line 3, column 1');
  });
});
