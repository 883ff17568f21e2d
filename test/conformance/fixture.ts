import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { deflateSync, crc32 } from 'node:zlib'
import { setTimeout as sleep } from 'node:timers/promises'
import { z } from 'zod'
import type { CallToolResult, ElicitResult } from '@modelcontextprotocol/sdk/types.js'
import { ToolError } from '../../plugins/mcp.js'

/**
 * What the server scenarios of @modelcontextprotocol/conformance 0.1.16 call,
 * registered through the mcp plugin's public decorators only, as a reusing app
 * would. Never registered by app.ts: `npm run conformance` and the tests load it.
 * Names, arguments and texts are the ones the suite's scenario descriptions give.
 */

/** A 1×1 red PNG, built rather than pasted: signature, IHDR, IDAT, IEND. */
export function onePixelPng (): Buffer {
  const chunk = (type: string, data: Buffer): Buffer => {
    const body = Buffer.concat([Buffer.from(type, 'latin1'), data])
    const length = Buffer.alloc(4)
    length.writeUInt32BE(data.length)
    const crc = Buffer.alloc(4)
    crc.writeUInt32BE(crc32(body))
    return Buffer.concat([length, body, crc])
  }
  // Width 1, height 1, bit depth 8, colour type 2 (RGB), deflate, no filter, no interlace.
  const header = Buffer.from([0, 0, 0, 1, 0, 0, 0, 1, 8, 2, 0, 0, 0])
  // One scanline: filter byte 0, then red.
  const pixels = deflateSync(Buffer.from([0, 0xff, 0, 0]))
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', header), chunk('IDAT', pixels), chunk('IEND', Buffer.alloc(0))
  ])
}

/** A tenth of a second of silence: a PCM WAV (RIFF header, fmt, data), 8 kHz, 8 bit, mono. */
export function silentWav (): Buffer {
  const samples = 800
  const wav = Buffer.alloc(44 + samples, 0x80)
  wav.write('RIFF', 0, 'latin1')
  wav.writeUInt32LE(36 + samples, 4)
  wav.write('WAVEfmt ', 8, 'latin1')
  wav.writeUInt32LE(16, 16) // fmt chunk size
  wav.writeUInt16LE(1, 20) // PCM
  wav.writeUInt16LE(1, 22) // mono
  wav.writeUInt32LE(8000, 24) // sample rate
  wav.writeUInt32LE(8000, 28) // byte rate
  wav.writeUInt16LE(1, 32) // block align
  wav.writeUInt16LE(8, 34) // bits per sample
  wav.write('data', 36, 'latin1')
  wav.writeUInt32LE(samples, 40)
  return wav
}

const PNG = onePixelPng().toString('base64')
const WAV = silentWav().toString('base64')
const NO_ARGUMENTS = z.object({})
/** What completion/complete suggests for arg1: the words starting with what was typed. */
const ARG1_SUGGESTIONS = ['paris', 'park', 'party', 'test', 'testing']

/** What the SEP-1034 and SEP-1330 tools answer. */
function elicitationCompleted (answer: ElicitResult): CallToolResult {
  return { content: [{ type: 'text', text: `Elicitation completed: action=${answer.action}, content=${JSON.stringify(answer.content ?? {})}` }] }
}

async function conformanceFixture (fastify: FastifyInstance): Promise<void> {
  // Scenario tools-call-simple-text (called without an `arguments` member at all).
  fastify.mcpTool({
    name: 'test_simple_text',
    description: 'Returns a fixed text',
    inputSchema: NO_ARGUMENTS
  }, () => ({ content: [{ type: 'text', text: 'This is a simple text response for testing.' }] }))

  // tools-call-image
  fastify.mcpTool({
    name: 'test_image_content',
    description: 'Returns a 1x1 PNG image',
    inputSchema: NO_ARGUMENTS
  }, () => ({ content: [{ type: 'image', data: PNG, mimeType: 'image/png' }] }))

  // tools-call-audio
  fastify.mcpTool({
    name: 'test_audio_content',
    description: 'Returns a short WAV recording of silence',
    inputSchema: NO_ARGUMENTS
  }, () => ({ content: [{ type: 'audio', data: WAV, mimeType: 'audio/wav' }] }))

  // tools-call-embedded-resource
  fastify.mcpTool({
    name: 'test_embedded_resource',
    description: 'Returns an embedded text resource',
    inputSchema: NO_ARGUMENTS
  }, () => ({
    content: [{
      type: 'resource',
      resource: { uri: 'test://embedded-resource', mimeType: 'text/plain', text: 'This is an embedded resource content.' }
    }]
  }))

  // tools-call-mixed-content
  fastify.mcpTool({
    name: 'test_multiple_content_types',
    description: 'Returns text, an image and an embedded resource',
    inputSchema: NO_ARGUMENTS
  }, () => ({
    content: [
      { type: 'text', text: 'Multiple content types test:' },
      { type: 'image', data: PNG, mimeType: 'image/png' },
      {
        type: 'resource',
        resource: { uri: 'test://mixed-content-resource', mimeType: 'application/json', text: JSON.stringify({ test: 'data', value: 123 }) }
      }
    ]
  }))

  // tools-call-error: an error meant for the model is a result with isError, not a JSON-RPC error.
  fastify.mcpTool({
    name: 'test_error_handling',
    description: 'Always fails',
    inputSchema: NO_ARGUMENTS
  }, () => { throw new ToolError('This tool intentionally returns an error for testing') })

  // tools-call-with-progress: 0, 50, 100 of 100, about 50 ms apart.
  fastify.mcpTool({
    name: 'test_tool_with_progress',
    description: 'Reports progress three times',
    inputSchema: NO_ARGUMENTS
  }, async (_args, ctx) => {
    for (const progress of [0, 50, 100]) {
      if (progress > 0) {
        // A cancelled call stops between its reports (its answer goes nowhere anyway).
        await sleep(50, undefined, { signal: ctx.signal }).catch(() => undefined)
        if (ctx.signal.aborted) break
      }
      ctx.sendProgress(progress, 100)
    }
    return { content: [{ type: 'text', text: 'Progress reported: 0, 50, 100 of 100' }] }
  })

  // json-schema-2020-12 (SEP-1613): the input schema reaches the client as written.
  fastify.mcpTool({
    name: 'json_schema_2020_12_tool',
    description: 'Tool with JSON Schema 2020-12 features',
    inputSchema: {
      $schema: 'https://json-schema.org/draft/2020-12/schema',
      type: 'object',
      $defs: {
        address: {
          type: 'object',
          properties: { street: { type: 'string' }, city: { type: 'string' } }
        }
      },
      properties: {
        name: { type: 'string' },
        address: { $ref: '#/$defs/address' }
      },
      additionalProperties: false
    }
  }, args => ({ content: [{ type: 'text', text: `Received: ${JSON.stringify(args)}` }] }))

  // tools-call-with-logging: three info messages, about 50 ms apart, while the call runs.
  fastify.mcpTool({
    name: 'test_tool_with_logging',
    description: 'Sends three log messages while it runs',
    inputSchema: NO_ARGUMENTS
  }, async (_args, ctx) => {
    ctx.mcpLog.info('Tool execution started')
    await sleep(50)
    ctx.mcpLog.info('Tool processing data')
    await sleep(50)
    ctx.mcpLog.info('Tool execution completed')
    return { content: [{ type: 'text', text: 'Tool with logging executed successfully' }] }
  })

  // tools-call-sampling: the prompt goes to the client's model; without the capability, ctx.createMessage
  // rejects with a ClientCapabilityError, which is a ToolError: the result says so (isError).
  fastify.mcpTool({
    name: 'test_sampling',
    description: 'Asks the client\'s model to answer a prompt',
    inputSchema: z.object({ prompt: z.string().describe('The prompt to send to the LLM') })
  }, async ({ prompt }, ctx) => {
    const answer = await ctx.createMessage({ messages: [{ role: 'user', content: { type: 'text', text: prompt } }], maxTokens: 100 })
    const blocks = Array.isArray(answer.content) ? answer.content : [answer.content]
    const text = blocks.map(b => b.type === 'text' ? b.text : `[${b.type}]`).join('\n')
    return { content: [{ type: 'text', text: `LLM response: ${text}` }] }
  })

  // tools-call-elicitation
  fastify.mcpTool({
    name: 'test_elicitation',
    description: 'Asks the user for a username and an email address',
    inputSchema: z.object({ message: z.string().describe('The message to show the user') })
  }, async ({ message }, ctx) => {
    const answer = await ctx.elicit({
      message,
      requestedSchema: {
        type: 'object',
        properties: {
          username: { type: 'string', description: 'User\'s response' },
          email: { type: 'string', description: 'User\'s email address' }
        },
        required: ['username', 'email']
      }
    })
    return { content: [{ type: 'text', text: `User response: action=${answer.action}, content=${JSON.stringify(answer.content ?? {})}` }] }
  })

  // elicitation-sep1034-defaults: a default for every primitive type.
  fastify.mcpTool({
    name: 'test_elicitation_sep1034_defaults',
    description: 'Asks the user with defaults for every primitive type (SEP-1034)',
    inputSchema: NO_ARGUMENTS
  }, async (_args, ctx) => elicitationCompleted(await ctx.elicit({
    message: 'Please review your profile (defaults filled in)',
    requestedSchema: {
      type: 'object',
      properties: {
        name: { type: 'string', title: 'Name', default: 'John Doe' },
        age: { type: 'integer', title: 'Age', default: 30 },
        score: { type: 'number', title: 'Score', default: 95.5 },
        status: { type: 'string', title: 'Status', enum: ['active', 'inactive', 'pending'], default: 'active' },
        verified: { type: 'boolean', title: 'Verified', default: true }
      }
    }
  })))

  // elicitation-sep1330-enums: the five enum forms.
  fastify.mcpTool({
    name: 'test_elicitation_sep1330_enums',
    description: 'Asks the user with every enum form (SEP-1330)',
    inputSchema: NO_ARGUMENTS
  }, async (_args, ctx) => elicitationCompleted(await ctx.elicit({
    message: 'Please choose',
    requestedSchema: {
      type: 'object',
      properties: {
        untitledSingle: { type: 'string', enum: ['option1', 'option2', 'option3'] },
        titledSingle: {
          type: 'string',
          oneOf: [{ const: 'value1', title: 'First Option' }, { const: 'value2', title: 'Second Option' }, { const: 'value3', title: 'Third Option' }]
        },
        legacyEnum: { type: 'string', enum: ['opt1', 'opt2', 'opt3'], enumNames: ['Option One', 'Option Two', 'Option Three'] },
        untitledMulti: { type: 'array', items: { type: 'string', enum: ['option1', 'option2', 'option3'] } },
        titledMulti: {
          type: 'array',
          items: { anyOf: [{ const: 'value1', title: 'First Choice' }, { const: 'value2', title: 'Second Choice' }, { const: 'value3', title: 'Third Choice' }] }
        }
      }
    }
  })))

  // server-sse-polling (SEP-1699): the call ends its SSE stream after the priming event, answers a
  // little later, and the client fetches the answer with GET and Last-Event-ID.
  fastify.mcpTool({
    name: 'test_reconnection',
    description: 'Closes its SSE stream, then answers on the resumed stream',
    inputSchema: NO_ARGUMENTS
  }, async (_args, ctx) => {
    ctx.closeSseStream()
    await sleep(100)
    return { content: [{ type: 'text', text: 'Reconnection test completed' }] }
  })

  // Resources (resources-list, resources-read-text, resources-read-binary, resources-subscribe, resources-unsubscribe).
  fastify.mcpResource({
    uri: 'test://static-text',
    name: 'static-text',
    description: 'A fixed text resource',
    mimeType: 'text/plain'
  }, uri => ({ contents: [{ uri, mimeType: 'text/plain', text: 'This is the content of the static text resource.' }] }))
  fastify.mcpResource({
    uri: 'test://static-binary',
    name: 'static-binary',
    description: 'A fixed binary resource (a 1x1 PNG)',
    mimeType: 'image/png'
  }, uri => ({ contents: [{ uri, mimeType: 'image/png', blob: PNG }] }))
  fastify.mcpResource({
    uri: 'test://watched-resource',
    name: 'watched-resource',
    description: 'A resource clients subscribe to',
    mimeType: 'text/plain'
  }, uri => ({ contents: [{ uri, mimeType: 'text/plain', text: 'Watched resource content' }] }))

  // resources-templates-read: the variable is substituted into the contents.
  fastify.mcpResourceTemplate({
    uriTemplate: 'test://template/{id}/data',
    name: 'template-data',
    description: 'Data for an ID',
    mimeType: 'application/json'
  }, (uri, { id }) => ({
    contents: [{ uri, mimeType: 'application/json', text: JSON.stringify({ id, templateTest: true, data: `Data for ID: ${id}` }) }]
  }))

  // Prompts (prompts-list, prompts-get-*); completion-complete completes arg1 of test_prompt_with_arguments.
  fastify.mcpPrompt({
    name: 'test_simple_prompt',
    description: 'A prompt without arguments'
  }, () => ({ messages: [{ role: 'user', content: { type: 'text', text: 'This is a simple prompt for testing.' } }] }))
  fastify.mcpPrompt({
    name: 'test_prompt_with_arguments',
    description: 'A prompt with two arguments',
    arguments: [
      { name: 'arg1', description: 'First test argument', required: true, complete: value => ARG1_SUGGESTIONS.filter(s => s.startsWith(value.toLowerCase())) },
      { name: 'arg2', description: 'Second test argument', required: true }
    ]
  }, ({ arg1, arg2 }) => ({
    messages: [{ role: 'user', content: { type: 'text', text: `Prompt with arguments: arg1='${arg1}', arg2='${arg2}'` } }]
  }))
  fastify.mcpPrompt({
    name: 'test_prompt_with_embedded_resource',
    description: 'A prompt embedding the resource it is given',
    arguments: [{ name: 'resourceUri', description: 'URI of the resource to embed', required: true }]
  }, ({ resourceUri }) => ({
    messages: [
      { role: 'user', content: { type: 'resource', resource: { uri: resourceUri, mimeType: 'text/plain', text: 'Embedded resource content for testing.' } } },
      { role: 'user', content: { type: 'text', text: 'Please process the embedded resource above.' } }
    ]
  }))
  fastify.mcpPrompt({
    name: 'test_prompt_with_image',
    description: 'A prompt with an image'
  }, () => ({
    messages: [
      { role: 'user', content: { type: 'image', data: PNG, mimeType: 'image/png' } },
      { role: 'user', content: { type: 'text', text: 'Please analyze the image above.' } }
    ]
  }))
}

export default fp(conformanceFixture, { name: 'conformance-fixture', fastify: '5.x', dependencies: ['mcp'] })
