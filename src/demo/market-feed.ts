/**
 * The demo publisher behind `edgepush --demo`: a random walk of prices for a dozen tickers on
 * channels like `US/NASDAQ/AAPL`, published through the same path as any client's publish.
 */
import { SERVER_IDENTITY } from '../auth/identity.js';
import type { Publisher } from '../publish/publisher.js';

interface Ticker {
  readonly countryCode: string;
  readonly exchange: string;
  readonly tickerSymbol: string;
  readonly currency: string;
  price: number;
  open: number;
  volume: number;
}

const TICKERS: readonly [string, string, string, string, number][] = [
  ['US', 'NASDAQ', 'AAPL', 'USD', 228.5],
  ['US', 'NASDAQ', 'MSFT', 'USD', 415.2],
  ['US', 'NASDAQ', 'NVDA', 'USD', 131.8],
  ['US', 'NASDAQ', 'AMZN', 'USD', 186.4],
  ['US', 'NYSE', 'IBM', 'USD', 221.9],
  ['US', 'NYSE', 'JPM', 'USD', 224.1],
  ['US', 'NYSE', 'KO', 'USD', 69.7],
  ['GB', 'LSE', 'VOD', 'GBP', 0.71],
  ['GB', 'LSE', 'HSBA', 'GBP', 6.93],
  ['DE', 'XETRA', 'SAP', 'EUR', 209.3],
  ['JP', 'TSE', '7203', 'JPY', 2645],
  ['FR', 'EPA', 'MC', 'EUR', 652.4],
];

export function channelOf(ticker: Pick<Ticker, 'countryCode' | 'exchange' | 'tickerSymbol'>): string {
  return `${ticker.countryCode}/${ticker.exchange}/${ticker.tickerSymbol}`;
}

export const DEMO_CHANNELS = TICKERS.map(([countryCode, exchange, tickerSymbol]) => channelOf({ countryCode, exchange, tickerSymbol }));

export interface MarketFeed {
  stop(): void;
}

/** Publishes a tick for a few random tickers every `intervalMs`. */
export function startMarketFeed(publisher: Publisher, onError: (error: unknown) => void, intervalMs = 250): MarketFeed {
  const tickers: Ticker[] = TICKERS.map(([countryCode, exchange, tickerSymbol, currency, price]) => ({
    countryCode,
    exchange,
    tickerSymbol,
    currency,
    price,
    open: price,
    volume: 0,
  }));
  const timer = setInterval(() => {
    const moved = tickers.filter(() => Math.random() < 0.4);
    if (moved.length === 0) return;
    const messages = moved.map((ticker) => ({ channel: channelOf(ticker), data: tick(ticker) }));
    publisher.publish(SERVER_IDENTITY, messages).catch(onError);
  }, intervalMs);
  return { stop: () => clearInterval(timer) };
}

function tick(ticker: Ticker): Record<string, unknown> {
  ticker.price = Math.max(0.01, ticker.price * (1 + (Math.random() - 0.5) * 0.004));
  ticker.volume += Math.floor(Math.random() * 5000);
  const digits = ticker.price < 10 ? 4 : 2;
  const spread = ticker.price * 0.0004;
  const round = (n: number): number => Number(n.toFixed(digits));
  return {
    tickerSymbol: ticker.tickerSymbol,
    countryCode: ticker.countryCode,
    exchange: ticker.exchange,
    currency: ticker.currency,
    lastPrice: round(ticker.price),
    bidPrice: round(ticker.price - spread),
    askPrice: round(ticker.price + spread),
    change: round(ticker.price - ticker.open),
    changePercent: Number((((ticker.price - ticker.open) / ticker.open) * 100).toFixed(2)),
    volume: ticker.volume,
    tradeTime: Date.now(),
  };
}
