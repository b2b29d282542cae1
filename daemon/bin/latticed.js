#!/usr/bin/env node
import "../dist/latticed/entry.js";
export {};
