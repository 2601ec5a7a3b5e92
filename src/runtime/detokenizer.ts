/**
 * Incremental detokenization: the text each new token adds. Decoding a token alone is wrong
 * for most tokenizers (SentencePiece drops a leading space, byte-level BPE splits characters
 * across tokens), so each step decodes a short window of preceding ids and keeps the
 * difference. A token that ends inside a multi-byte character adds '' until the character is
 * complete; the token that completes it carries it.
 */
const INCOMPLETE = '\uFFFD';
/** Preceding ids decoded with each step: enough for a space or a split character. */
const CONTEXT = 6;

export class IncrementalDecoder {
  private readonly ids: number[];
  private prefixOffset = 0;
  private readOffset: number;

  constructor(
    private readonly decode: (ids: number[]) => string,
    context: number[] = [],
  ) {
    this.ids = context.slice(-CONTEXT);
    this.readOffset = this.ids.length;
  }

  /** The text `id` would add after what was pushed so far, without pushing it. */
  peek(id: number): string {
    const prefix = this.decode(this.ids.slice(this.prefixOffset, this.readOffset));
    const full = this.decode([...this.ids.slice(this.prefixOffset), id]);
    if (full.length <= prefix.length || full.endsWith(INCOMPLETE)) return '';
    return full.slice(prefix.length);
  }

  push(id: number): string {
    const text = this.peek(id);
    this.ids.push(id);
    if (text !== '') {
      this.prefixOffset = this.readOffset;
      this.readOffset = this.ids.length;
    }
    return text;
  }
}
