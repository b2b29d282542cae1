import { test, expect } from "vitest";
import { typesPackage } from "@lattice/types";
test("workspace imports resolve to sources", () => { expect(typesPackage).toBe("@lattice/types"); });
