// node:http serving the same body: the floor under every framework.
import { serveBareNode } from '../shared.js';

serveBareNode();
