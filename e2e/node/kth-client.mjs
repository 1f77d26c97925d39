// Drives @kth/canvas-api through the gate. Prints one JSON line with what
// the client saw; e2e/client_test.go asserts on it.
//   CANVAS_BASE=http://127.0.0.1:PORT/api/v1 CANVAS_TOKEN=... node kth-client.mjs
import { CanvasApi, CanvasApiResponseError } from "@kth/canvas-api";

const canvas = new CanvasApi(process.env.CANVAS_BASE, process.env.CANVAS_TOKEN, {
  disableThrottling: true,
});

const result = { items: [], pages: 0, denied: null };

// A paginated list call: listPages follows the Link headers.
for await (const page of canvas.listPages("courses", { per_page: 2, include: ["teachers"] })) {
  result.pages += 1;
  result.items.push(...page.json.map((c) => c.id));
}

// A call outside the token's scopes surfaces Canvas's 401 through the
// client's own error type.
try {
  await canvas.get("accounts");
  result.denied = { error: "no error thrown" };
} catch (err) {
  if (!(err instanceof CanvasApiResponseError)) {
    result.denied = { error: `unexpected ${err.name}: ${err.message}` };
  } else {
    result.denied = {
      name: err.name,
      status: err.response.statusCode,
      message: err.response.json?.errors?.[0]?.message ?? null,
      wwwAuthenticate: err.response.headers?.["www-authenticate"] ?? null,
    };
  }
}

console.log(JSON.stringify(result));
