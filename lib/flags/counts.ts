import type { Reader } from '../metrics/index.js';

/** Most distinct `flag` label values; evaluations of further flags are counted under `other`. */
const MAX_FLAGS = 1_000;

/**
 * `feature_flag_evaluations_total{flag,result}`, counted in memory per evaluation (two map
 * lookups) and read at scrape time. Labels stay bounded: `flag` is a defined flag's name (names
 * that reach us from requests but match no flag are `unknown`), `result` is `on`, `off` or one of
 * the flag's (at most 20) variant names.
 */
export class EvaluationCounts {
  readonly #byFlag = new Map<string, Map<string, number>>();

  count(flag: string, result: string): void {
    let results = this.#byFlag.get(flag);
    if (results === undefined) {
      const label = this.#byFlag.size >= MAX_FLAGS ? 'other' : flag;
      results = this.#byFlag.get(label);
      if (results === undefined) {
        results = new Map();
        this.#byFlag.set(label, results);
      }
    }
    results.set(result, (results.get(result) ?? 0) + 1);
  }

  readonly read: Reader = (emit) => {
    for (const [flag, results] of this.#byFlag) for (const [result, n] of results) emit([flag, result], n);
  };
}
