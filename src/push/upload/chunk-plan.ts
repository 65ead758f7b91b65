/** Pure: how a file of `size` bytes is cut into chunks of `chunkSize` (the last may be shorter). */
export interface ChunkPart {
  index: number;
  /** Offset in the shore file. */
  offset: number;
  length: number;
}

export function planChunks(size: number, chunkSize: number): ChunkPart[] {
  if (!Number.isSafeInteger(size) || size < 0) throw new RangeError(`Expected size to be a whole number >= 0, got ${size}`);
  if (!Number.isSafeInteger(chunkSize) || chunkSize < 1) throw new RangeError(`Expected chunkSize to be a whole number >= 1, got ${chunkSize}`);
  const parts: ChunkPart[] = [];
  for (let offset = 0, index = 0; offset < size; offset += chunkSize, index++) {
    parts.push({ index, offset, length: Math.min(chunkSize, size - offset) });
  }
  return parts;
}
