// A sample source record for the composer's filter and transform, shaped as the chosen source
// shapes its records (docs/pipe-format.md): Kafka records as AWS lays them out, the others with the
// event under `body`.
export const CART_EVENT = {
  "detail-type": "OrderPlaced",
  source: "shop.cart",
  time: "2024-05-01T10:00:00.000Z",
  region: "eu-west-1",
  detail: {
    order_id: "ord-000000042",
    customer: { id: "cust-4719049", tier: "gold" },
    channel: "web",
    items: [{ sku: "SKU-82461", qty: 2, price: 71.25 }],
    total: 142.5,
    currency: "EUR",
  },
};

export function sampleRecord(source) {
  const type = (source && source.type) || "";
  const option = (key, fallback) => (source && typeof source[key] === "string" ? source[key] : fallback);
  switch (type) {
    case "kafka":
      return {
        topic: (source.topics && source.topics[0]) || "shop.cart",
        partition: 0,
        offset: 42,
        timestamp: 1714557600000,
        key: "cust-4719049",
        headers: {},
        value: CART_EVENT,
      };
    case "redis_stream":
      return { stream: option("stream", "shop.cart"), id: "1714557600000-0", body: CART_EVENT };
    case "redis_list":
      return { list: option("list", "shop.cart"), body: CART_EVENT };
    case "file":
      return { path: option("path", "in.jsonl"), offset: 0, body: CART_EVENT };
    case "generator":
      return { index: 42, body: CART_EVENT };
    default:
      return { body: CART_EVENT };
  }
}

// Where the event sits in a record of that source: what a new filter and template start from.
export function bodyKey(source) {
  return source && source.type === "kafka" ? "value" : "body";
}
