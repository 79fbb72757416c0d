#!/usr/bin/env node
// The CLI is TypeScript like the rest of the project: tsx compiles it in this process on the fly.
import { register } from 'tsx/esm/api';

register();
await import('../src/main.ts');
