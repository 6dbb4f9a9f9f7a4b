// The WebSocket to the server: one JSON object per text frame (signaling contract v1).
// Messages sent before the socket opens are queued and flushed on open. One Signaling is
// one socket: reconnecting (with `resume`) is the Meeting's job, on a new Signaling.

/** `ws://host/ws` or `wss://host/ws` on the origin that served the page. */
export function signalingUrl(loc = globalThis.location) {
  const scheme = loc.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${loc.host}/ws`;
}

export class Signaling extends EventTarget {
  #ws;
  #queue = [];
  #closedByUs = false;
  #opened = false;

  /**
   * Dispatches one `message` event per received frame (`event.detail` is the parsed
   * object) and one `close` event (`event.detail` is `{ code, reason, expected, opened }`,
   * `expected` when we closed it ourselves, `opened` when the socket had opened).
   */
  constructor(url = signalingUrl()) {
    super();
    this.#ws = new WebSocket(url);
    this.#ws.addEventListener('open', () => {
      this.#opened = true;
      for (const text of this.#queue) this.#ws.send(text);
      this.#queue = [];
    });
    this.#ws.addEventListener('message', (event) => this.#receive(event.data));
    this.#ws.addEventListener('close', (event) => {
      this.dispatchEvent(new CustomEvent('close', {
        detail: { code: event.code, reason: event.reason, expected: this.#closedByUs, opened: this.#opened },
      }));
    });
  }

  /** `'connecting'`, `'open'`, `'closing'` or `'closed'`. */
  get readyState() {
    return ['connecting', 'open', 'closing', 'closed'][this.#ws.readyState];
  }

  send(message) {
    const text = JSON.stringify(message);
    if (this.#ws.readyState === WebSocket.CONNECTING) {
      this.#queue.push(text);
    } else if (this.#ws.readyState === WebSocket.OPEN) {
      this.#ws.send(text);
    }
  }

  close() {
    this.#closedByUs = true;
    this.#queue = [];
    if (this.#ws.readyState === WebSocket.CONNECTING || this.#ws.readyState === WebSocket.OPEN) {
      this.#ws.close(1000);
    }
  }

  #receive(data) {
    let message;
    try {
      message = JSON.parse(data);
    } catch {
      console.warn('signaling: ignoring a frame that is not JSON', data);
      return;
    }
    if (message === null || typeof message !== 'object' || typeof message.type !== 'string') {
      console.warn('signaling: ignoring a frame without a type', message);
      return;
    }
    this.dispatchEvent(new CustomEvent('message', { detail: message }));
  }
}
