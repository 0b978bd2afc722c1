/** @jest-config-loader esbuild-register */
import type { Config } from 'jest';

const transform: Config['transform'] = {
  '^.+\\.ts$': [
    '@swc/jest',
    { jsc: { target: 'es2022', parser: { syntax: 'typescript' } }, module: { type: 'commonjs' } },
  ],
};

// lib/ uses NodeNext-style `./x.js` specifiers; jest resolves them to the .ts sources.
// `caduceus` maps to the source, so files written for users (migrations/*.cjs) load in tests as they are.
const moduleNameMapper = { '^(\\.{1,2}/.*)\\.js$': '$1', '^caduceus$': '<rootDir>/lib/index.ts' };

const config: Config = {
  projects: [
    {
      displayName: 'unit',
      testEnvironment: 'node',
      transform,
      moduleNameMapper,
      roots: ['<rootDir>/test'],
      testMatch: ['**/*.test.ts'],
      testPathIgnorePatterns: ['/test/external/'],
      globalSetup: '<rootDir>/test/support/global-setup.ts',
    },
    {
      displayName: 'external',
      testEnvironment: 'node',
      transform,
      roots: ['<rootDir>/test/external'],
      testMatch: ['**/*.test.ts'],
    },
  ],
  testTimeout: 20_000,
};

export default config;
