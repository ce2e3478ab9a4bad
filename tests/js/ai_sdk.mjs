// The Vercel AI SDK against the proxy, one scenario per run, through the provider named first:
// chat (@ai-sdk/openai on chat completions), responses (@ai-sdk/openai on the Responses API),
// compatible (@ai-sdk/openai-compatible on chat completions), anthropic (Messages) or ollama
// (the community Ollama provider, on the native API).
import { createAnthropic } from '@ai-sdk/anthropic';
import { createOpenAI } from '@ai-sdk/openai';
import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import { embed, embedMany, generateObject, generateText, Output, stepCountIs, streamText, tool } from 'ai';
import { createOllama } from 'ollama-ai-provider-v2';
import { z } from 'zod';

import { described, proxyUrl, run, token } from './scenario.mjs';

globalThis.AI_SDK_LOG_WARNINGS = false; // keep stderr for failures; generateText returns its warnings

const MAX_TOKENS = 64;
const openai = () => createOpenAI({ baseURL: `${proxyUrl}/v1`, apiKey: token });
const compatible = () => createOpenAICompatible({ name: 'proxy', baseURL: `${proxyUrl}/v1`, apiKey: token,
                                                  includeUsage: true, supportsStructuredOutputs: true });
const ollama = () => createOllama({ baseURL: `${proxyUrl}/api`, headers: { Authorization: `Bearer ${token}` } });
const PROVIDERS = {
  chat: () => openai().chat,
  responses: () => openai().responses,
  compatible: () => compatible().chatModel,
  anthropic: () => createAnthropic({ baseURL: `${proxyUrl}/v1`, apiKey: token }).messages,
  ollama: () => ollama().chat,
};
const EMBEDDERS = {
  chat: () => openai().embedding,
  compatible: () => compatible().embeddingModel,
  ollama: () => ollama().embedding,
};
// Each provider's own way to ask for thinking (provider options are keyed by provider name).
const THINK = {
  responses: { openai: { forceReasoning: true, reasoningEffort: 'low' } }, // a model it does not know: forced
  compatible: { proxy: { reasoningEffort: 'low' } },
  anthropic: { anthropic: { thinking: { type: 'enabled', budgetTokens: 1024 } } },
  ollama: { ollama: { think: true } },
};

const PNG_BASE64 = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==';
const person = z.object({ name: z.string(), age: z.number() });
const getWeather = tool({
  description: 'The weather in a city',
  inputSchema: z.object({ city: z.string() }),
  execute: async ({ city }) => ({ city, sky: 'sunny' }),
});

function settings(surface, model, { providerOptions = {}, ...extra } = {}) {
  // The Ollama provider sends maxOutputTokens as a top-level field, which Ollama ignores: the
  // limit goes in Ollama's own options too.
  const limit = surface === 'ollama' ? { options: { num_predict: MAX_TOKENS } } : {};
  return {
    model: PROVIDERS[surface]()(model),
    maxOutputTokens: MAX_TOKENS,
    providerOptions: { ...providerOptions, ollama: { ...limit, ...providerOptions.ollama } },
    maxRetries: 0,
    ...extra,
  };
}

function stepsOf(steps) {
  return steps.map((step) => ({
    text: step.text,
    finishReason: step.finishReason,
    toolCalls: step.toolCalls.map((call) => ({ name: call.toolName, input: call.input })),
    toolResults: step.toolResults.map((result) => result.output),
  }));
}

async function streamed(result) {
  const parts = [];
  for await (const part of result.textStream) parts.push(part);
  return parts;
}

await run({
  async generateText(surface) {
    const result = await generateText(settings(surface, 'llama3.2', { prompt: 'why is the sky blue?' }));
    return { text: result.text, finishReason: result.finishReason, usage: result.usage, warnings: result.warnings };
  },

  async streamText(surface) {
    let failure = null;
    const result = streamText(settings(surface, 'llama3.2', {
      prompt: 'why is the sky blue?',
      onError: ({ error }) => { failure = described(error); },
    }));
    const parts = await streamed(result);
    return { parts, finishReason: await result.finishReason, usage: await result.usage, error: failure };
  },

  // The same schema asked for twice: with generateObject and with generateText's output.
  async object(surface, mode) {
    const extra = { providerOptions: mode ? { anthropic: { structuredOutputMode: mode } } : {} };
    const generated = await generateObject(settings(surface, 'qwen3:8b', { schema: person, prompt: 'Ada', ...extra }));
    const texted = await generateText(settings(surface, 'qwen3:8b', {
      output: Output.object({ schema: person }), prompt: 'Ada', ...extra,
    }));
    return { object: generated.object, output: texted.output };
  },

  async tools(surface) {
    const result = await generateText(settings(surface, 'llama3.2', {
      prompt: 'What is the weather in Oslo?', tools: { get_weather: getWeather }, stopWhen: stepCountIs(3),
    }));
    return { text: result.text, steps: stepsOf(result.steps) };
  },

  async streamTools(surface) {
    const result = streamText(settings(surface, 'llama3.2', {
      prompt: 'What is the weather in Oslo?', tools: { get_weather: getWeather }, stopWhen: stepCountIs(3),
    }));
    const parts = await streamed(result);
    return { text: parts.join(''), steps: stepsOf(await result.steps) };
  },

  async reasoning(surface) {
    const streamedParts = { reasoning: '', text: '' };
    const stream = streamText(settings(surface, 'qwen3:8b', { prompt: 'why?', providerOptions: THINK[surface] }));
    for await (const part of stream.fullStream) {
      if (part.type === 'reasoning-delta') streamedParts.reasoning += part.text;
      if (part.type === 'text-delta') streamedParts.text += part.text;
    }
    const whole = await generateText(settings(surface, 'qwen3:8b', { prompt: 'why?', providerOptions: THINK[surface] }));
    return { streamed: streamedParts, whole: { reasoning: whole.reasoningText ?? '', text: whole.text } };
  },

  // Two turns, the second sending the first's answer back as the SDK hands it over
  // (response.messages). store: the OpenAI provider option, for the Responses API.
  async conversation(surface, store) {
    const options = store === undefined ? {} : { providerOptions: { openai: { store: store === 'true' } } };
    const messages = [{ role: 'user', content: 'hello' }];
    const texts = [];
    try {
      for (const next of ['and again', null]) {
        const result = await generateText(settings(surface, 'llama3.2', { messages, ...options }));
        texts.push(result.text);
        if (next) messages.push(...result.response.messages, { role: 'user', content: next });
      }
    } catch (error) {
      return { texts, error: described(error) };
    }
    return { texts, error: null };
  },

  // A stream the model fails in after two parts: what the SDK shows of the error frame.
  async streamError(surface) {
    const parts = [];
    const stream = streamText(settings(surface, 'llama3.2', { prompt: 'hi', onError: () => {} }));
    for await (const part of stream.fullStream) {
      if (part.type === 'text-delta') parts.push(part.text);
      if (part.type === 'error') parts.push({ error: part.error.message });
    }
    return { parts, finishReason: await stream.finishReason };
  },

  // A PNG's bytes beside the question (the Ollama provider takes them as base64 only).
  async image(surface) {
    const png = Buffer.from(PNG_BASE64, 'base64');
    const image = surface === 'ollama' ? PNG_BASE64 : new Uint8Array(png);
    const content = [{ type: 'text', text: 'What is this?' }, { type: 'image', image, mediaType: 'image/png' }];
    return (await generateText(settings(surface, 'llava', { messages: [{ role: 'user', content }] }))).text;
  },

  async embed(surface) {
    const model = EMBEDDERS[surface]()('all-minilm');
    const many = await embedMany({ model, values: ['first text', 'second text'], maxRetries: 0 });
    const one = await embed({ model, value: 'first text', maxRetries: 0 });
    return { embeddings: many.embeddings, embedding: one.embedding };
  },

  async error(surface) {
    try {
      return { answer: (await generateText(settings(surface, 'llama3.2', { prompt: 'hi' }))).text };
    } catch (error) {
      return described(error);
    }
  },

  // Read `chunks` text parts of a long stream, then abort it through its AbortController.
  async abort(surface, chunks) {
    const controller = new AbortController();
    let aborted = false;
    const result = streamText(settings(surface, 'llama3.2', {
      prompt: 'talk for a while',
      abortSignal: controller.signal,
      onAbort: () => { aborted = true; },
      onError: () => {},
    }));
    const parts = [];
    for await (const part of result.textStream) {
      parts.push(part);
      if (parts.length === Number(chunks)) controller.abort();
    }
    return { parts, aborted };
  },
});
