// edgepush's publish puts a channel on the partition Kafka's Java client would (and the tests work
// out where keyed records land with the same function): it must agree with Java's partitioner,
// which most backends writing to the same topics use.
import { describe, expect, it } from 'vitest';
import { murmur2 } from '@platformatic/kafka';
import { javaPartition as partitionOf } from '../../../src/kafka/kafka-client.js';

// Printed by kafka-clients 4.1.2 itself: Utils.murmur2 of the UTF-8 bytes and
// BuiltInPartitioner.partitionForKey for 1, 2, 3, 5, 7 and 12 partitions.
const JAVA: ReadonlyArray<[key: string, murmur2: number, partitions: number[]]> = [
  ['21', -973932308, [0, 0, 0, 0, 3, 0]],
  ['foobar', -790332482, [0, 0, 0, 1, 0, 6]],
  ['abc', 479470107, [0, 1, 0, 2, 4, 3]],
  ['jobs/7f3a', 633673143, [0, 1, 0, 3, 5, 3]],
  ['jobs/b2c4', -1006946221, [0, 1, 1, 2, 1, 7]],
  ['jobs/0d1e', -1672100981, [0, 1, 0, 2, 4, 3]],
  ['US/NASDAQ/AAPL', -957454670, [0, 0, 0, 3, 5, 6]],
  ['AAPL', 1691292177, [0, 1, 0, 2, 1, 9]],
  ['live/a', 996032898, [0, 0, 0, 3, 0, 6]],
  ['live/b', 1108525948, [0, 0, 1, 3, 5, 4]],
  ['chat/room-1', 1415054095, [0, 1, 1, 0, 0, 7]],
  ['deep/0', 1582587385, [0, 1, 1, 0, 1, 1]],
  ['orders/1', 559511244, [0, 0, 0, 4, 5, 0]],
  ['résumé ✓', 8591545, [0, 1, 1, 0, 4, 1]],
];
const COUNTS = [1, 2, 3, 5, 7, 12];

describe("partitionOf (the partition Kafka's Java client picks for a key)", () => {
  it("hashes keys as Java's murmur2 does", () => {
    for (const [key, hash] of JAVA) expect(murmur2(Buffer.from(key, 'utf8')), key).toBe(hash);
  });

  it('places keys on the partitions Java places them on', () => {
    for (const [key, , partitions] of JAVA) expect(COUNTS.map((n) => partitionOf(key, n)), key).toEqual(partitions);
  });

  it('drops the sign bit of a negative hash rather than reading it unsigned', () => {
    // jobs/b2c4 hashes negative; read as unsigned 32 bits it would land on partition 0 of 3.
    expect((murmur2(Buffer.from('jobs/b2c4')) >>> 0) % 3).toBe(0);
    expect(partitionOf('jobs/b2c4', 3)).toBe(1);
  });
});
