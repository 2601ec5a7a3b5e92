/**
 * A model directory's weights: either one `model.safetensors` or the shards listed by
 * `model.safetensors.index.json` (`{"weight_map": {tensor name: shard file}}`).
 */
import { existsSync } from 'node:fs';
import { basename, join } from 'node:path';
import { describe, FieldReader, isRecord, readJsonFile } from './json.js';
import { SafetensorsFile, type TensorInfo } from './safetensors.js';
import type { HostTensor } from './types.js';

export const SINGLE_FILE = 'model.safetensors';
export const INDEX_FILE = 'model.safetensors.index.json';

export class SafetensorsCheckpoint {
  private constructor(
    /** The file that says where tensors are: model.safetensors or the index; named in messages. */
    readonly source: string,
    private readonly shards: ReadonlyMap<string, SafetensorsFile>,
    private readonly where: ReadonlyMap<string, SafetensorsFile>,
  ) {}

  /** Prefers model.safetensors when both layouts are present, as transformers does. */
  static open(dir: string): SafetensorsCheckpoint {
    const single = join(dir, SINGLE_FILE);
    if (existsSync(single)) {
      const file = SafetensorsFile.open(single);
      return new SafetensorsCheckpoint(single, new Map([[single, file]]), new Map([...file.tensors.keys()].map((n) => [n, file])));
    }
    const index = join(dir, INDEX_FILE);
    if (existsSync(index)) return SafetensorsCheckpoint.openSharded(dir, index);
    throw new Error(`${dir}: no ${SINGLE_FILE} or ${INDEX_FILE} found`);
  }

  private static openSharded(dir: string, index: string): SafetensorsCheckpoint {
    const map = new FieldReader(readJsonFile(index), index).raw('weight_map');
    if (!isRecord(map)) throw new Error(`${index}: field "weight_map" must be an object {tensor name: shard file}, got ${describe(map)}`);
    const shards = new Map<string, SafetensorsFile>();
    const where = new Map<string, SafetensorsFile>();
    try {
      for (const [name, shard] of Object.entries(map)) {
        // Shards live beside the index; a path elsewhere would read files outside the model directory.
        if (typeof shard !== 'string' || shard !== basename(shard) || shard === '' || shard === '..') {
          throw new Error(`${index}: weight_map["${name}"] must be a file name in the same directory, got ${describe(shard)}`);
        }
        const path = join(dir, shard);
        let file = shards.get(path);
        if (file === undefined) {
          if (!existsSync(path)) throw new Error(`${index}: shard ${shard} (for tensor "${name}") not found at ${path}`);
          file = SafetensorsFile.open(path);
          shards.set(path, file);
        }
        if (!file.tensors.has(name)) throw new Error(`${index}: weight_map puts tensor "${name}" in ${path}, which does not contain it`);
        where.set(name, file);
      }
    } catch (err) {
      for (const f of shards.values()) f.close();
      throw err;
    }
    return new SafetensorsCheckpoint(index, shards, where);
  }

  /** The safetensors files, in a stable (sorted) order. */
  get files(): string[] {
    return [...this.shards.keys()].sort();
  }

  names(): string[] {
    return [...this.where.keys()];
  }

  info(name: string): TensorInfo | undefined {
    return this.where.get(name)?.tensors.get(name);
  }

  read(name: string): HostTensor {
    const file = this.where.get(name);
    if (file === undefined) throw new Error(`${this.source}: no tensor "${name}"`);
    return file.read(name);
  }

  close(): void {
    for (const f of this.shards.values()) f.close();
  }
}
