import type { Command } from "commander";
import { registerConfig } from "./config.js";

/** Each command file exports a function that adds its command to the program. */
export type RegisterCommand = (program: Command) => void;

export const commands: RegisterCommand[] = [registerConfig];
