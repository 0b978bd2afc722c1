/**
 * Every Express-facing suite runs against Express 4 and Express 5: `describe.each(EXPRESS)(...)`.
 * Express 5 is the `express` devDependency; Express 4 is installed under the alias `express4`.
 */
import type { Express } from 'express';

type ExpressFactory = {
  (): Express;
  json: (options?: { limit?: string | number }) => import('express').RequestHandler;
  Router: () => import('express').Router;
};

const express5 = require('express') as ExpressFactory;
const express4 = require('express4') as ExpressFactory;

export interface ExpressVariant {
  name: string;
  major: 4 | 5;
  express: ExpressFactory;
}

export const EXPRESS: readonly ExpressVariant[] = [
  { name: 'Express 4', major: 4, express: express4 },
  { name: 'Express 5', major: 5, express: express5 },
];

export const eachExpress = EXPRESS.map((v) => [v.name, v] as const);
