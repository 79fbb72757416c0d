#!/usr/bin/env node
// The CLI built to plain JS at install (cli/build.mjs); rebuilt first if a source changed since.
import { pathToFileURL } from 'node:url';
import { OUTPUT, build, isFresh } from '../build.mjs';

if (!isFresh()) await build();
try {
  await import(pathToFileURL(OUTPUT).href);
} catch (e) {
  // Another CLI was swapping in its build at that instant: the new one is there a moment later.
  if (e.code !== 'ERR_MODULE_NOT_FOUND') throw e;
  await new Promise((r) => setTimeout(r, 200));
  await import(`${pathToFileURL(OUTPUT).href}?again`);
}
