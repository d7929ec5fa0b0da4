import type { Command } from "commander";
import { registerArchive } from "./archive.js";
import { registerBatch } from "./batch.js";
import { registerClassify } from "./classify.js";
import { registerConfig } from "./config.js";
import { registerStart } from "./start.js";
import { registerDlq } from "./dlq.js";
import { registerEvaluate } from "./evaluate.js";
import { registerGenerate } from "./generate.js";
import { registerInfo } from "./info.js";
import { registerIngest } from "./ingest.js";
import { registerModel } from "./model.js";
import { registerOps } from "./ops.js";
import { registerServe } from "./serve.js";
import { registerSpeed } from "./speed.js";
import { registerTrain } from "./train.js";
import { registerViews } from "./views.js";

/** Each command file exports a function that adds its command to the program. */
export type RegisterCommand = (program: Command) => void;

export const commands: RegisterCommand[] = [
  registerStart,
  registerConfig,
  registerGenerate,
  registerArchive,
  registerTrain,
  registerClassify,
  registerInfo,
  registerEvaluate,
  registerBatch,
  registerViews,
  registerServe,
  registerIngest,
  registerSpeed,
  registerModel,
  registerDlq,
  registerOps,
];
