import type { Command } from "commander";

/** Each command file exports a function that adds its command to the program. */
export type RegisterCommand = (program: Command) => void;

export const commands: RegisterCommand[] = [];
