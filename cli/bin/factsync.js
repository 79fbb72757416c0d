#!/usr/bin/env node
// The CLI built to plain JS at install (cli/build.mjs); rebuilt first if a source changed since.
import { OUTPUT, build, isFresh } from '../build.mjs';

if (!isFresh()) await build();
await import(OUTPUT);
