/**
 * Reads a V8 sampling heap profile (`.heapprofile`, as written by `HeapProfiler.stopSampling` or
 * `node --heap-prof`) as a CPU profile whose weights are bytes instead of microseconds, so the
 * CPU profile's summary (bench/support/cpu-profile.ts) attributes allocations the same way: by
 * package, by function, and to the innermost caduceus / Express / router / app frame. Open the
 * same file in Chrome DevTools (Memory tab) for the tree.
 */
import type { CallFrame, CpuProfile } from './cpu-profile.js';

interface HeapNode {
  id: number;
  callFrame: CallFrame;
  /** Bytes sampled as allocated by this frame itself (scaled up from the sampling interval). */
  selfSize: number;
  children: HeapNode[];
}

export interface HeapProfile {
  head: HeapNode;
}

/**
 * The allocation tree as a CPU profile: one node per frame, one "sample" per frame that allocated,
 * weighted by its bytes (a CPU profile weighs sample `i` by `timeDeltas[i + 1]`).
 */
export function asCpuProfile(profile: HeapProfile): CpuProfile {
  const nodes: CpuProfile['nodes'] = [];
  const samples: number[] = [];
  const timeDeltas: number[] = [0];
  const pending: HeapNode[] = [profile.head];
  for (let node = pending.pop(); node !== undefined; node = pending.pop()) {
    nodes.push({ id: node.id, callFrame: node.callFrame, children: node.children.map((c) => c.id) });
    if (node.selfSize > 0) {
      samples.push(node.id);
      timeDeltas.push(node.selfSize);
    }
    pending.push(...node.children);
  }
  return { nodes, samples, timeDeltas, startTime: 0, endTime: 0 };
}
