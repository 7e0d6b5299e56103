/**
 * The model's concurrency machinery: tasks, the scheduler and its strategies, schedules as
 * strings, lock primitives and findings. See DESIGN.md "Time, concurrency and determinism".
 */
export * from './findings.js';
export * from './locks.js';
export * from './schedule.js';
export * from './scheduler.js';
export * from './strategy.js';
export * from './task.js';
