import { Type } from '@sinclair/typebox';
import { AtLeastQuery } from '@factsync/shared';

/** Most objects one page of a Permit list holds (Permit's own API allows 100; a little more costs nothing). */
export const MAX_PER_PAGE = 1000;

/** `page` and `per_page` as the SDKs send them, and `at_least` to read one's own writes. */
export const PageQuery = {
  page: Type.Optional(Type.Integer({ minimum: 1, default: 1, description: 'page number, from 1' })),
  per_page: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_PER_PAGE, default: 100, description: `objects per page, at most ${MAX_PER_PAGE}` })),
  at_least: AtLeastQuery.properties.at_least,
};
/** A filter the SDKs may repeat (`?user=a&user=b`); a single value arrives as a one-element list. */
export const Filter = Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 600 }), { maxItems: 100 }));

export interface Page<R> { data: R[]; total: number | undefined }

/**
 * Page `page` of what `items` yields, each rendered; the walk stops at the end
 * of the page unless `countAll` asks for the total (lists whose answer has a
 * `total_count`). Items are produced lazily, in the store's key order, so a
 * page costs the items before it and no copy of the rest.
 */
export function paginate<T, R>(items: Iterable<T>, q: { page?: number; per_page?: number }, render: (t: T) => R, countAll = false): Page<R> {
  const perPage = q.per_page ?? 100;
  const skip = ((q.page ?? 1) - 1) * perPage;
  const data: R[] = [];
  let seen = 0;
  for (const item of items) {
    if (seen >= skip && data.length < perPage) data.push(render(item));
    seen++;
    if (!countAll && data.length >= perPage) break;
  }
  return { data, total: countAll ? seen : undefined };
}

/** Permit's `PaginatedResult…`: the page, the total and the number of pages. */
export const paginated = <R>(p: Page<R>, perPage = 100) => ({ data: p.data, total_count: p.total ?? p.data.length, page_count: Math.ceil((p.total ?? p.data.length) / perPage) });
