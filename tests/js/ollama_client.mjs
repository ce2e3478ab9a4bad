// The official ollama JavaScript client against the proxy's native API, one scenario per run.
import { Ollama } from 'ollama';

import { described, proxyUrl, run, token } from './scenario.mjs';

const client = new Ollama({ host: proxyUrl, headers: { Authorization: `Bearer ${token}` } });
const WEATHER = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'The weather in a city',
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
  },
};

function ask(content) {
  return [{ role: 'user', content }];
}

async function collect(stream, pick) {
  const parts = [];
  for await (const part of stream) parts.push(pick(part));
  return parts;
}

await run({
  async chat() {
    return client.chat({ model: 'llama3.2', messages: ask('why is the sky blue?') });
  },

  async chatStream() {
    const stream = await client.chat({ model: 'llama3.2', messages: ask('why is the sky blue?'), stream: true });
    return collect(stream, (part) => part);
  },

  // A stream the model fails in: the parts before the error, then the error the client throws.
  async streamError() {
    const parts = [];
    try {
      for await (const part of await client.chat({ model: 'llama3.2', messages: ask('hi'), stream: true })) {
        parts.push(part.message.content);
      }
    } catch (error) {
      return { parts, error: described(error) };
    }
    return { parts, error: null };
  },

  async generate() {
    const whole = await client.generate({ model: 'llama3.2', prompt: 'count to three' });
    const stream = await client.generate({ model: 'llama3.2', prompt: 'count to three', stream: true });
    return { whole, parts: await collect(stream, (part) => part.response) };
  },

  async embed() {
    return client.embed({ model: 'all-minilm', input: ['first text', 'second text'] });
  },

  async listings() {
    const list = await client.list();
    const show = await client.show({ model: 'qwen3:8b' });
    await client.generate({ model: 'qwen3:8b', prompt: 'hi' });
    const ps = await client.ps();
    return { list, show, ps };
  },

  async pull() {
    return collect(await client.pull({ model: 'tinyllama', stream: true }), (part) => part);
  },

  // Ask, run the tool the model called, send its result back, and return both answers.
  async tools() {
    const messages = ask('What is the weather in Oslo?');
    const first = await client.chat({ model: 'llama3.2', messages, tools: [WEATHER] });
    messages.push(first.message);
    for (const call of first.message.tool_calls ?? []) {
      const result = { city: call.function.arguments.city, sky: 'sunny' };
      messages.push({ role: 'tool', tool_name: call.function.name, content: JSON.stringify(result) });
    }
    const second = await client.chat({ model: 'llama3.2', messages, tools: [WEATHER] });
    return { first: first.message, second: second.message };
  },

  async error(model) {
    try {
      return { answer: await client.chat({ model, messages: ask('hi') }) };
    } catch (error) {
      return described(error);
    }
  },

  // Read `chunks` parts of a long stream, then abort it as an application would.
  async abort(chunks) {
    const stream = await client.chat({ model: 'llama3.2', messages: ask('talk for a while'), stream: true });
    const parts = [];
    try {
      for await (const part of stream) {
        parts.push(part.message.content);
        if (parts.length === Number(chunks)) stream.abort();
      }
    } catch (error) {
      return { parts, error: described(error) };
    }
    return { parts, error: null };
  },
});
