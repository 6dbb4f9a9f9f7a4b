// The chat panel: the message log, the input, and the unread badge on its button.

export class ChatPanel {
  #panel;
  #log;
  #form;
  #input;
  #button;
  #badge;
  #onOpen;
  #unread = 0;

  /**
   * @param {{ panel: HTMLElement, log: HTMLElement, form: HTMLFormElement, input: HTMLInputElement,
   *   button: HTMLButtonElement, badge: HTMLElement, closeButton: HTMLButtonElement,
   *   onSend: (text: string) => void, onOpen: () => void }} elements `onOpen` is told when
   *   the panel opens (to close the other panel)
   */
  constructor({ panel, log, form, input, button, badge, closeButton, onSend, onOpen }) {
    this.#panel = panel;
    this.#log = log;
    this.#form = form;
    this.#input = input;
    this.#button = button;
    this.#badge = badge;
    this.#onOpen = onOpen;
    button.addEventListener('click', () => this.toggle());
    closeButton.addEventListener('click', () => this.toggle(false));
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      const text = input.value.trim();
      if (!text) return;
      onSend(text);
      input.value = '';
    });
  }

  get open() {
    return !this.#panel.hidden;
  }

  toggle(open = !this.open) {
    if (open === this.open) return;
    this.#panel.hidden = !open;
    this.#button.setAttribute('aria-pressed', String(open));
    if (open) {
      this.#onOpen();
      this.#setUnread(0);
      this.#input.focus();
      this.#log.scrollTop = this.#log.scrollHeight;
    } else if (this.#panel.contains(document.activeElement)) {
      this.#button.focus();
    }
  }

  /** @param {{ name: string, text: string, ts: number, mine: boolean }} message */
  add({ name, text, ts, mine }) {
    const item = document.createElement('li');
    item.className = mine ? 'chat-message mine' : 'chat-message';
    const meta = document.createElement('div');
    meta.className = 'chat-meta';
    const who = document.createElement('span');
    who.className = 'chat-name';
    who.textContent = mine ? 'You' : name;
    const when = document.createElement('time');
    const date = new Date(Number.isFinite(ts) ? ts : Date.now());
    when.dateTime = date.toISOString();
    when.textContent = date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
    meta.append(who, when);
    const body = document.createElement('p');
    body.className = 'chat-text';
    body.append(...linkified(text));
    item.append(meta, body);
    this.#log.append(item);
    this.#log.scrollTop = this.#log.scrollHeight;
    if (!this.open && !mine) this.#setUnread(this.#unread + 1);
  }

  clear() {
    this.#log.replaceChildren();
    this.#setUnread(0);
    this.toggle(false);
    this.#form.reset();
  }

  #setUnread(count) {
    this.#unread = count;
    this.#badge.textContent = count > 99 ? '99+' : String(count);
    this.#badge.hidden = count === 0;
    this.#button.title = count ? `Chat with everyone (${count} unread)` : 'Chat with everyone';
  }
}

const URL_PATTERN = /\bhttps?:\/\/[^\s<>"]+[^\s<>".,;:!?)\]}'"]/g;

/** `text` as text nodes and links (http and https addresses only; never HTML). */
function linkified(text) {
  const nodes = [];
  let last = 0;
  for (const match of text.matchAll(URL_PATTERN)) {
    nodes.push(document.createTextNode(text.slice(last, match.index)));
    const link = document.createElement('a');
    link.href = match[0];
    link.textContent = match[0];
    link.target = '_blank';
    link.rel = 'noopener noreferrer';
    nodes.push(link);
    last = match.index + match[0].length;
  }
  nodes.push(document.createTextNode(text.slice(last)));
  return nodes;
}
