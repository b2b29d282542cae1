/** The one change type: merging a batch of changes the way the node backend applies them. */
import { describe, expect, it } from "vitest";
import { mergeChanges } from "../src/mapper/types.js";

describe("mergeChanges", () => {
  it("unites ids once each, ORs flags, keeps the last online state", () => {
    const m = mergeChanges([
      { nodesAdded: [1], online: new Map([[2, true]]) },
      { nodesChanged: [2, 3], endpointsChanged: [3, 4], userProfilesChanged: true },
      { nodesAdded: [1], online: new Map([[2, false]]), policyChanged: true },
    ]);
    expect(m).toEqual({
      nodesAdded: [1],
      nodesChanged: [2, 3],
      endpointsChanged: [4],
      online: new Map([[2, false]]),
      userProfilesChanged: true,
      policyChanged: true,
    });
  });

  it("a node added or changed and then removed in the same batch is only removed", () => {
    const m = mergeChanges([{ nodesAdded: [5], online: new Map([[5, true]]) }, { nodesChanged: [5], endpointsChanged: [5], policyChangedFor: [5, 6] }, { nodesRemoved: [5], disconnect: [5] }]);
    expect(m).toEqual({ nodesRemoved: [5], disconnect: [5], policyChangedFor: [6] });
  });

  it("a node added and changed counts as added", () => {
    expect(mergeChanges([{ nodesAdded: [7] }, { nodesChanged: [7] }])).toEqual({ nodesAdded: [7] });
    expect(mergeChanges([])).toEqual({});
  });
});
