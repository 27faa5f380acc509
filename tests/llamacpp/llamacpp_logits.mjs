// Runs a GGUF file in llama.cpp (node-llama-cpp's prebuilt CPU binaries) on token ids and compares
// its logits, position by position, with a reference written by `latmix logits`.
//
// node llamacpp_logits.mjs --package DIR --gguf FILE --ids a,b,c [--ref LOGITS.safetensors]
//      [--max-abs X] [--mean-abs X] [--ppl-rel X] [--text STR [--text-ids x,y,z]]
// DIR holds node_modules/node-llama-cpp. Prints one JSON line of figures; exit 1 when a figure is
// beyond its bound, 2 on a usage or setup error. With --text, llama.cpp's tokenization of STR
// (no special tokens) must equal --text-ids (default: --ids), checked first (without --ref: only
// that check; with it, both in one start of llama.cpp).
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

function parseArgs(argv) {
  const out = {};
  for (let i = 0; i < argv.length; i += 2) {
    if (!argv[i].startsWith("--") || i + 1 >= argv.length) throw new Error(`bad argument ${argv[i]}`);
    out[argv[i].slice(2)] = argv[i + 1];
  }
  return out;
}

// The tensor "logits" (F32 [T, V]) of a safetensors file.
function readLogits(file) {
  const buf = fs.readFileSync(file);
  const headerLen = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + headerLen).toString("utf8"));
  const t = header.logits;
  if (!t || t.dtype !== "F32" || t.shape.length !== 2) throw new Error(`${file}: no F32 [T, V] tensor "logits"`);
  const [begin, end] = t.data_offsets;
  const start = 8 + headerLen + begin;
  const data = new Float32Array(buf.buffer.slice(buf.byteOffset + start, buf.byteOffset + 8 + headerLen + end));
  return { rows: t.shape[0], cols: t.shape[1], data };
}

function logSoftmaxAt(row, index) {
  let max = -Infinity;
  for (const v of row) max = Math.max(max, v);
  let sum = 0;
  for (const v of row) sum += Math.exp(v - max);
  return row[index] - max - Math.log(sum);
}

async function main() {
  const a = parseArgs(process.argv.slice(2));
  for (const k of ["package", "gguf", "ids"]) if (!a[k]) throw new Error(`--${k} is required`);
  if (!a.ref && a.text === undefined) throw new Error("--ref or --text is required");
  const ids = a.ids.split(",").map(Number);
  const entry = path.join(a.package, "node_modules", "node-llama-cpp", "dist", "index.js");
  const { getLlama, LlamaLogLevel } = await import(pathToFileURL(entry).href);
  const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
  const model = await llama.loadModel({ modelPath: a.gguf, gpuLayers: 0, useMmap: false });
  if (a.text !== undefined) {
    const want = a["text-ids"] ?? a.ids;
    const got = Array.from(model.tokenize(a.text, false));
    if (got.join(",") !== want) {
      console.log(JSON.stringify({ tokenizer: "differs", llamacpp: got.slice(0, 40), latmix: want.split(",").slice(0, 40) }));
      process.exit(1);
    }
    if (!a.ref) {
      console.log(JSON.stringify({ tokenizer: "equal", tokens: got.length }));
      process.exit(0);
    }
  }
  const ref = readLogits(a.ref);
  if (ref.rows !== ids.length) throw new Error(`reference has ${ref.rows} rows for ${ids.length} ids`);
  const contextSize = 2 * ids.length + 64;  // larger than the sequence: no context shift
  const context = await model.createContext({
    contextSize,
    batchSize: ids.length,
    flashAttention: false,
    experimentalKvCacheKeyType: "F32",
    experimentalKvCacheValueType: "F32",
    threads: 2,
  });
  const sequence = context.getSequence();
  const input = ids.map((id) => [id, { generateNext: { logits: true } }]);
  const results = await sequence.controlledEvaluate(input);
  const V = ref.cols;
  let maxAbs = 0, sumAbs = 0, nllOurs = 0, nllTheirs = 0, argmaxAgree = 0;
  for (let t = 0; t < ids.length; ++t) {
    const logits = results[t]?.next?.logits;
    if (!logits || logits.size !== V) throw new Error(`position ${t}: ${logits ? logits.size : 0} logits, expected ${V}`);
    const theirs = new Float64Array(V);
    for (const [token, value] of logits) theirs[token] = value;
    const ours = ref.data.subarray(t * V, (t + 1) * V);
    let am1 = 0, am2 = 0;
    for (let v = 0; v < V; ++v) {
      const d = Math.abs(theirs[v] - ours[v]);
      maxAbs = Math.max(maxAbs, d);
      sumAbs += d;
      if (theirs[v] > theirs[am1]) am1 = v;
      if (ours[v] > ours[am2]) am2 = v;
    }
    if (am1 === am2) ++argmaxAgree;
    if (t + 1 < ids.length) {
      nllTheirs -= logSoftmaxAt(theirs, ids[t + 1]);
      nllOurs -= logSoftmaxAt(Array.from(ours), ids[t + 1]);
    }
  }
  const scored = ids.length - 1;
  const pplOurs = Math.exp(nllOurs / scored), pplTheirs = Math.exp(nllTheirs / scored);
  const figures = {
    ...(a.text !== undefined ? { tokenizer: "equal" } : {}),
    positions: ids.length,
    vocab: V,
    max_abs: maxAbs,
    mean_abs: sumAbs / (ids.length * V),
    ppl_latmix: pplOurs,
    ppl_llamacpp: pplTheirs,
    ppl_rel: Math.abs(pplTheirs / pplOurs - 1),
    argmax_agree: argmaxAgree / ids.length,
  };
  console.log(JSON.stringify(figures));
  let ok = true;
  for (const [key, bound] of [["max_abs", a["max-abs"]], ["mean_abs", a["mean-abs"]], ["ppl_rel", a["ppl-rel"]]]) {
    if (bound !== undefined && !(figures[key] < Number(bound))) {
      console.error(`FAIL ${key} = ${figures[key]} (bound ${bound})`);
      ok = false;
    }
  }
  await context.dispose();
  await model.dispose();
  await llama.dispose();
  process.exit(ok ? 0 : 1);
}

main().catch((e) => {
  console.error(`error: ${e.message}`);
  process.exit(2);
});
