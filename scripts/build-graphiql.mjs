#!/usr/bin/env node
// `npm run build:graphiql`: bundles the self-hosted GraphiQL page (src/graphiql/app.tsx) with esbuild into
// build/graphiql/: index.html, assets/ (app, lazy chunks, CSS, Monaco's three workers). Every file is
// served by the gateway itself; nothing is fetched from a CDN. File names carry content hashes, so the
// route can cache assets forever. Each asset also gets a gzipped copy beside it (`<name>.gz`), which the
// route sends to browsers that accept gzip: compressed once here, never per request.
//
// `npm start` and `npm test` run this every time, so it skips the build when the inputs (src/graphiql/,
// this script, package-lock.json) hash to the same value as the last build. `--force` rebuilds anyway.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { constants, gzipSync } from 'node:zlib';
import { build } from 'esbuild';

const root = resolve(fileURLToPath(new URL('..', import.meta.url)));
const sourceDir = join(root, 'src/graphiql');
const outDir = join(root, 'build/graphiql');
const stampFile = join(outDir, '.inputs-hash');
const force = process.argv.includes('--force');

/** Monaco workers (label → module), one classic script each; the app maps labels to files. */
const WORKERS = {
  editor: 'monaco-editor/esm/vs/editor/editor.worker.js',
  json: 'monaco-editor/esm/vs/language/json/json.worker.js',
  graphql: 'monaco-graphql/esm/graphql.worker.js',
};

function listFiles(dir) {
  return readdirSync(dir, { withFileTypes: true })
    .flatMap((e) => (e.isDirectory() ? listFiles(join(dir, e.name)) : [join(dir, e.name)]))
    .sort();
}

function inputsHash() {
  const hash = createHash('sha256');
  for (const file of [...listFiles(sourceDir), fileURLToPath(import.meta.url), join(root, 'package-lock.json')]) {
    hash.update(relative(root, file)).update('\0').update(readFileSync(file)).update('\0');
  }
  return hash.digest('hex');
}

const hash = inputsHash();
if (!force && existsSync(join(outDir, 'index.html')) && existsSync(stampFile) && readFileSync(stampFile, 'utf8') === hash) {
  console.log('GraphiQL bundle up to date (build/graphiql)');
  process.exit(0);
}

const started = Date.now();
// Build beside the live directory and swap at the end, so a running gateway never serves half a bundle.
const tmpDir = `${outDir}.tmp-${process.pid}`;
rmSync(tmpDir, { recursive: true, force: true });
const assetsDir = join(tmpDir, 'assets');
mkdirSync(assetsDir, { recursive: true });

/** Output file (relative to assets/) of each entry point of a metafile. */
function entryOutputs(metafile) {
  const outputs = {};
  for (const [file, out] of Object.entries(metafile.outputs)) {
    if (out.entryPoint && !file.endsWith('.map')) outputs[out.entryPoint] = relative(assetsDir, resolve(root, file));
  }
  return outputs;
}

try {
  const workerResult = await build({
    absWorkingDir: root,
    entryPoints: Object.values(WORKERS),
    bundle: true,
    format: 'iife',
    minify: true,
    target: 'es2022',
    outdir: assetsDir,
    entryNames: '[name]-[hash]',
    metafile: true,
    logLevel: 'warning',
    define: { 'process.env.NODE_ENV': '"production"' },
  });
  const workerFiles = entryOutputs(workerResult.metafile);
  const workerNames = Object.fromEntries(
    Object.entries(WORKERS).map(([label, module]) => {
      const file = Object.entries(workerFiles).find(([entry]) => entry.endsWith(module.replace(/^[^/]+\//, '')))?.[1];
      if (!file) throw new Error(`worker ${label} (${module}) produced no output`);
      return [label, file];
    }),
  );

  const appResult = await build({
    absWorkingDir: root,
    entryPoints: { app: join(sourceDir, 'app.tsx') },
    bundle: true,
    format: 'esm',
    splitting: true,
    minify: true,
    target: 'es2022',
    jsx: 'automatic',
    outdir: assetsDir,
    entryNames: '[name]-[hash]',
    chunkNames: 'chunk-[hash]',
    assetNames: '[name]-[hash]',
    loader: { '.ttf': 'file', '.woff': 'file', '.woff2': 'file' },
    metafile: true,
    logLevel: 'warning',
    define: { 'process.env.NODE_ENV': '"production"', GRAPHIQL_WORKERS: JSON.stringify(workerNames) },
    plugins: [
      {
        // Monaco's ESM sources import their CSS piecemeal, and lazily; graphiql/style.css already holds
        // all of it (and its icon font inlined), so those imports are dropped instead of split into
        // chunk CSS files no <link> would load.
        name: 'monaco-css-from-graphiql-style',
        setup(b) {
          b.onLoad({ filter: /[\\/]monaco-editor[\\/].*\.css$/ }, () => ({ contents: '', loader: 'css' }));
        },
      },
    ],
  });

  const outputs = Object.entries(appResult.metafile.outputs);
  const appJs = outputs.find(([, o]) => o.entryPoint && o.entryPoint.endsWith('app.tsx'));
  if (!appJs) throw new Error('app.tsx produced no output');
  const appCss = appJs[1].cssBundle;
  const asset = (file) => `/graphiql/assets/${relative(assetsDir, resolve(root, file))}`;

  writeFileSync(
    join(tmpDir, 'index.html'),
    `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <title>GraphiQL · Exotel GraphQL gateway</title>
    <link rel="icon" href="data:," />
${appCss ? `    <link rel="stylesheet" href="${asset(appCss)}" />\n` : ''}    <script type="module" src="${asset(appJs[0])}"></script>
  </head>
  <body>
    <div id="root"></div>
    <noscript>GraphiQL needs JavaScript.</noscript>
  </body>
</html>
`,
  );
  // Below a kilobyte the gzip header and a request's headers outweigh what compression saves.
  for (const file of listFiles(assetsDir)) {
    if (statSync(file).size >= 1024) writeFileSync(`${file}.gz`, gzipSync(readFileSync(file), { level: constants.Z_BEST_COMPRESSION }));
  }
  writeFileSync(join(tmpDir, basename(stampFile)), hash);

  rmSync(outDir, { recursive: true, force: true });
  mkdirSync(dirname(outDir), { recursive: true });
  try {
    renameSync(tmpDir, outDir);
  } catch (err) {
    // Another build (npm start beside npm test) finished first; its bundle is as good if the inputs match.
    if (!(existsSync(stampFile) && readFileSync(stampFile, 'utf8') === hash)) throw err;
    rmSync(tmpDir, { recursive: true, force: true });
  }
} catch (err) {
  rmSync(tmpDir, { recursive: true, force: true });
  console.error(`GraphiQL bundle failed: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
}

const files = listFiles(outDir);
const megabytes = (list) => (list.reduce((sum, f) => sum + statSync(f).size, 0) / 1e6).toFixed(1);
console.log(`GraphiQL bundle built in ${Date.now() - started} ms: build/graphiql (${megabytes(files.filter((f) => !f.endsWith('.gz')))} MB, gzipped copies ${megabytes(files.filter((f) => f.endsWith('.gz')))} MB)`);
