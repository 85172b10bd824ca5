import { describe, expect, it } from 'vitest';
import { decodeTaskId, encodeTaskId, mapTaskIds } from '../../src/mcp/server-request-id.ts';

describe('task ids on aggregating routes', () => {
  it('round-trips the upstream and its own task id, and refuses anything else', () => {
    const id = encodeTaskId('jobs', 'task-7f3');
    expect(decodeTaskId(id)).toEqual({ upstream: 'jobs', taskId: 'task-7f3' });
    expect(decodeTaskId('task-7f3')).toBeUndefined();
    expect(decodeTaskId(42)).toBeUndefined();
    expect(decodeTaskId('gh1t.not-base64-json')).toBeUndefined();
  });

  it('rewrites every place MCP puts a task id, and nothing else, without touching the input', () => {
    const wrap = (id: string) => `<${id}>`;
    const created = { task: { taskId: 'a', status: 'working' } };
    expect(mapTaskIds(created, wrap)).toEqual({ task: { taskId: '<a>', status: 'working' } });
    expect(created.task.taskId).toBe('a');
    expect(mapTaskIds({ taskId: 'b', status: 'completed' }, wrap)).toEqual({
      taskId: '<b>',
      status: 'completed',
    });
    expect(mapTaskIds({ tasks: [{ taskId: 'c' }, { taskId: 'd' }] }, wrap)).toEqual({
      tasks: [{ taskId: '<c>' }, { taskId: '<d>' }],
    });
    const related = {
      content: [],
      _meta: { 'io.modelcontextprotocol/related-task': { taskId: 'e' }, other: 1 },
    };
    expect(mapTaskIds(related, wrap)).toEqual({
      content: [],
      _meta: { 'io.modelcontextprotocol/related-task': { taskId: '<e>' }, other: 1 },
    });
    const plain = { content: [{ type: 'text', text: 'taskId' }] };
    expect(mapTaskIds(plain, wrap)).toBe(plain);
  });
});
