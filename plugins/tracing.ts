import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { FastifyOtelInstrumentation } from '@fastify/otel'
import { context, propagation, trace, type Span } from '@opentelemetry/api'
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks'
import { W3CTraceContextPropagator } from '@opentelemetry/core'
import { resourceFromAttributes } from '@opentelemetry/resources'
import { BatchSpanProcessor, NodeTracerProvider, type SpanExporter, type ReadableSpan } from '@opentelemetry/sdk-trace-node'
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http'
import { UndiciInstrumentation } from '@opentelemetry/instrumentation-undici'
import * as channels from '../lib/observability/channels.js'
import { pathOf, redactedUrl } from '../lib/observability/request-log.js'

export interface TracingPluginOptions {
  serviceName: string
  /** The collector's base URL (OTEL_EXPORTER_OTLP_ENDPOINT); traces go to `<endpoint>/v1/traces`. */
  endpoint?: string
  /** Another exporter (tests use an in-memory one); replaces the OTLP exporter. */
  exporter?: SpanExporter
  /** Paths not traced (probes). */
  ignorePaths?: string[]
}

declare module 'fastify' {
  interface FastifyInstance {
    tracerProvider: NodeTracerProvider
  }
}

/** The undici instrumentation records the full URL: Alpha Vantage's takes the API key in its query. */
function redactUrlAttributes (span: Span, url: URL): void {
  span.setAttribute('url.full', redactedUrl(url))
  span.setAttribute('url.query', new URL(redactedUrl(url)).search)
}

/**
 * OpenTelemetry traces, exported over OTLP/HTTP:
 *
 * - the HTTP request and each hook and handler: @fastify/otel (the token
 *   verification is the `onRequest - authenticate` span);
 * - the MCP method and the tool call: spans made from the components'
 *   diagnostics-channel messages, children of the handler span;
 * - the upstream call (and the JWKS fetch): the undici instrumentation,
 *   which also propagates the W3C trace context (`traceparent`) upstream.
 *
 * No attribute carries a secret: URLs are recorded without their query
 * string (the server's) or with every query value that names a key, token,
 * secret or password replaced (the upstream's `apikey`); no header is recorded.
 */
async function tracingPlugin (fastify: FastifyInstance, opts: TracingPluginOptions): Promise<void> {
  if (opts.exporter === undefined && opts.endpoint === undefined) throw new Error('tracing: give "endpoint" or "exporter"')
  const exporter = opts.exporter ?? new OTLPTraceExporter({ url: `${(opts.endpoint as string).replace(/\/$/, '')}/v1/traces` })
  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({ 'service.name': opts.serviceName }),
    spanProcessors: [new BatchSpanProcessor(exporter, { scheduledDelayMillis: 1000 })]
  })
  // Process-wide and set once: a second app in the same process (tests) shares them.
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable())
  propagation.setGlobalPropagator(new W3CTraceContextPropagator())

  const ignored = new Set(opts.ignorePaths ?? ['/health', '/ready', '/metrics'])
  const fastifyOtel = new FastifyOtelInstrumentation({
    registerOnInitialization: false,
    ignorePaths: (route: { url: string }) => ignored.has(pathOf(route.url)),
    // @fastify/otel records the raw URL, query string included: a token sent as `?access_token=` must not reach a collector.
    requestHook: (span: Span, request: { url: string }) => { span.setAttribute('url.path', pathOf(request.url)) }
  })
  fastifyOtel.setTracerProvider(provider)
  const undici = new UndiciInstrumentation({
    requestHook: (span, request) => { redactUrlAttributes(span, new URL(request.path, request.origin)) }
  })
  undici.setTracerProvider(provider)
  undici.enable()

  const tracer = provider.getTracer('finance-news-mcp')
  /** A span for work that has just ended, as a child of the active span (the handler's). */
  function ended (name: string, durationMs: number, attributes: Record<string, string>, error: boolean): void {
    const now = Date.now()
    const span = tracer.startSpan(name, { startTime: now - durationMs, attributes })
    if (error) span.setStatus({ code: 2 })
    span.end(now)
  }
  const onTool = (m: channels.ToolCallMessage): void => {
    ended(`tool ${m.tool}`, m.durationMs, { 'mcp.tool.name': m.tool, 'mcp.tool.outcome': m.outcome }, m.outcome === 'failed')
  }
  const onMcp = (m: channels.McpRequestMessage): void => {
    // The MCP method span covers the handler so far: the handler span is the active one.
    const handler = trace.getActiveSpan() as (Span & Partial<ReadableSpan>) | undefined
    const started = handler?.startTime
    const durationMs = started === undefined ? 0 : Date.now() - (started[0] * 1000 + started[1] / 1e6)
    ended(`mcp ${m.method}`, durationMs, {
      'mcp.method.name': m.method,
      ...(m.tool !== undefined && { 'mcp.tool.name': m.tool }),
      'mcp.outcome': m.outcome
    }, m.outcome === 'error')
  }
  const onAuth = (m: channels.AuthDecisionMessage): void => {
    trace.getActiveSpan()?.setAttributes({ 'auth.outcome': m.outcome, 'auth.reason': m.reason })
  }
  channels.toolCallChannel.subscribe(onTool)
  channels.mcpRequestChannel.subscribe(onMcp)
  channels.authDecisionChannel.subscribe(onAuth)

  await fastify.register(fastifyOtel.plugin())
  fastify.decorate('tracerProvider', provider)
  fastify.addHook('onClose', async () => {
    channels.toolCallChannel.unsubscribe(onTool)
    channels.mcpRequestChannel.unsubscribe(onMcp)
    channels.authDecisionChannel.unsubscribe(onAuth)
    undici.disable()
    await provider.shutdown()
  })
  fastify.log.info({ endpoint: opts.endpoint }, 'OpenTelemetry traces on')
}

export default fp(tracingPlugin, { name: 'tracing', fastify: '5.x' })
