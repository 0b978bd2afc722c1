// Baseline: Express 5 with the one route and nothing else.
import express from 'express';
import { getPatient, PATIENT_PATH } from '../support/patient.js';
import { serve } from '../support/serve.js';

const app = express();
app.get(PATIENT_PATH, getPatient);

serve(app, { description: 'Express 5, one route, no middleware' });
