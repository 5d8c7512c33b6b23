// The steps after instantiation that cold-breakdown.mjs (Node) and cold-breakdown-page.mjs
// (Chromium) both time, so the two breakdowns measure the same thing: the package's WebCrypto
// content hash (`contentHash`; null: the engine hashes the bytes itself, the path before it),
// Engine (read + validate + lower + plan), a first and a second run of one input.
// `lap(name)` closes a step. maxBatch 64: Model.load's default.
export async function engineSteps(glue, contentHash, model, lap) {
  let engine;
  if (contentHash === null) {
    lap('hash');
    engine = new glue.Engine(model, 'cpu', 64);
  } else {
    const hash = await contentHash(model);
    lap('hash');
    engine = glue.Engine.withHash(model, 'cpu', 64, hash);
  }
  lap('loadAndPlan');
  const x = new Float32Array(engine.inputLen).fill(0.1);
  engine.run(x, 1);
  lap('firstRun');
  engine.run(x, 1);
  lap('secondRun');
  return engine;
}
