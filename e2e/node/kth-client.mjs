// Drives @kth/canvas-api through the gate. Prints one JSON line with what
// the client saw; e2e/client_test.go asserts on it.
//   CANVAS_BASE=http://127.0.0.1:PORT/api/v1 CANVAS_TOKEN=... node kth-client.mjs
// Optional: KTH_LIST (the paginated list, default "courses"), KTH_INCLUDE
// (its include[] values, comma-separated, default "teachers"), KTH_DENIED
// (the call the gate must refuse, default "accounts").
import { CanvasApi, CanvasApiResponseError } from "@kth/canvas-api";

const env = (name, fallback) => process.env[name] ?? fallback;
const canvas = new CanvasApi(process.env.CANVAS_BASE, process.env.CANVAS_TOKEN, {
  disableThrottling: true,
});

const result = { items: [], pages: 0, denied: null };

// A paginated list call: listPages follows the Link headers.
const include = env("KTH_INCLUDE", "teachers").split(",").filter(Boolean);
for await (const page of canvas.listPages(env("KTH_LIST", "courses"), { per_page: 2, include })) {
  result.pages += 1;
  result.items.push(...page.json.map((c) => c.id));
}

// A call the gate refuses surfaces Canvas's 401 through the client's own
// error type.
try {
  await canvas.get(env("KTH_DENIED", "accounts"));
  result.denied = { error: "no error thrown" };
} catch (err) {
  if (!(err instanceof CanvasApiResponseError)) {
    result.denied = { error: `unexpected ${err.name}: ${err.message}` };
  } else {
    result.denied = {
      name: err.name,
      status: err.response.statusCode,
      canvasStatus: err.response.json?.status ?? null,
      message: err.response.json?.errors?.[0]?.message ?? null,
      wwwAuthenticate: err.response.headers?.["www-authenticate"] ?? null,
    };
  }
}

console.log(JSON.stringify(result));
