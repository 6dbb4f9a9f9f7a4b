// The chat side panel: the message log, the input, and the unread badge on its button.

export class ChatPanel {
  #panel;
  #log;
  #form;
  #input;
  #button;
  #badge;
  #unread = 0;

  /**
   * @param {{ panel: HTMLElement, log: HTMLElement, form: HTMLFormElement, input: HTMLInputElement,
   *   button: HTMLButtonElement, badge: HTMLElement, closeButton: HTMLButtonElement,
   *   onSend: (text: string) => void }} elements
   */
  constructor({ panel, log, form, input, button, badge, closeButton, onSend }) {
    this.#panel = panel;
    this.#log = log;
    this.#form = form;
    this.#input = input;
    this.#button = button;
    this.#badge = badge;
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
    this.#panel.hidden = !open;
    this.#button.setAttribute('aria-pressed', String(open));
    this.#button.setAttribute('aria-label', open ? 'Close chat' : 'Open chat');
    if (open) {
      this.#setUnread(0);
      this.#input.focus();
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
    who.textContent = mine ? `${name} (you)` : name;
    const when = document.createElement('time');
    const date = new Date(Number.isFinite(ts) ? ts : Date.now());
    when.dateTime = date.toISOString();
    when.textContent = date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
    meta.append(who, when);
    const body = document.createElement('p');
    body.className = 'chat-text';
    body.textContent = text;
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
    this.#badge.textContent = String(count);
    this.#badge.hidden = count === 0;
  }
}
