#!/usr/bin/env node
import "../dist/wg/main.js";
