import type { Admin } from 'kafkajs';

/**
 * admin.fetchTopicOffsets, retried on the errors of a leader change: kafkajs retries only an
 * unknown partition there, and a node starting during a broker restart must not give up.
 */
export async function fetchOffsets(admin: Admin, topic: string): Promise<Awaited<ReturnType<Admin['fetchTopicOffsets']>>> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await admin.fetchTopicOffsets(topic);
    } catch (error) {
      const retriable = (error as { retriable?: boolean }).retriable === true || /leader|not available|coordinator/i.test((error as Error).message);
      if (!retriable || attempt >= 10) throw error;
      await new Promise((resolve) => setTimeout(resolve, Math.min(200 * 2 ** attempt, 3000)));
    }
  }
}
