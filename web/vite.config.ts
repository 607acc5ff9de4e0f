import { readFile } from 'node:fs/promises';
import { resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Connect, Plugin } from 'vite';
import { defineConfig } from 'vitest/config';

const here = fileURLToPath(new URL('.', import.meta.url));
const devCatalogDir = resolve(here, 'dev', 'catalog');

/**
 * `npm run dev` / `npm run preview` only: serves dev/catalog/*.json at /catalog/ so the example
 * public/config.json works without the shop server. Nothing of it is in dist/.
 */
function devCatalog(): Plugin {
  const handler: Connect.NextHandleFunction = (req, res, next) => {
    const name = decodeURIComponent((req.url ?? '/').split('?')[0]);
    const file = resolve(devCatalogDir, `.${name}`);
    if (!file.startsWith(devCatalogDir + sep) || !file.endsWith('.json')) return next();
    readFile(file).then(
      (body) => {
        res.setHeader('Content-Type', 'application/json');
        res.setHeader('Cache-Control', 'no-store');
        res.end(body);
      },
      () => next(),
    );
  };
  return {
    name: 'stockbridge-dev-catalog',
    configureServer(server) {
      server.middlewares.use('/catalog', handler);
    },
    configurePreviewServer(server) {
      server.middlewares.use('/catalog', handler);
    },
  };
}

export default defineConfig({
  // Relative asset URLs: dist/ works from any path (S3 prefix, CloudFront, a sub-folder).
  base: './',
  plugins: [devCatalog()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    sourcemap: false,
    // Two pages: the storefront and the checkout (which shares config/money code, nothing else).
    rolldownOptions: {
      input: {
        index: resolve(here, 'index.html'),
        checkout: resolve(here, 'checkout.html'),
      },
    },
  },
  server: { host: '127.0.0.1' },
  preview: { host: '127.0.0.1' },
  test: {
    include: ['src/**/*.test.ts'],
    environment: 'node',
  },
});
