/** One laboratory result, as a lab information system (LIS) would return it. */
export interface LabResult {
  readonly code: string;
  readonly display: string;
  readonly value: number;
  readonly unit: string;
  readonly observed_at: string;
}

/** The outbound dependency of the demo: a lab system reached over the network. */
export interface LabClient {
  resultsFor(patientId: string): Promise<LabResult[]>;
}

/**
 * The demo's lab client: no lab system is connected, so every call fails — after an `await`, the
 * way a network call does. The message is internal on purpose: `errors()` logs it and answers
 * with a generic 500, so it never reaches the client. Pass your own `LabClient` to `createApp()`.
 */
export function disconnectedLabs(): LabClient {
  return {
    async resultsFor(): Promise<LabResult[]> {
      await new Promise((resolve) => setImmediate(resolve));
      throw new Error(
        'LIS request failed: lis.internal.example:7443 refused the connection (pool lis-primary)',
      );
    },
  };
}
