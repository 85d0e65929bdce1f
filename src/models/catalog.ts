/**
 * Every model Inferno can see: the models directories in order, then the enabled stores, scanned and merged into one
 * `Scan`. Rules of the merge:
 *
 * - A name belongs to the first directory or store that has it; a later model with that name is shadowed (reachable by
 *   its absolute path).
 * - Every directory and store root is an allowed root: a symlink in one models directory that leads into another, or
 *   into a store, is a model, not an escape. Names leading anywhere else still need `allow_outside_models_dir`.
 * - The same file reached by two routes has one key (its canonical real path), so it is one model to the cache.
 */
import { type FoundModel, formatOf, isInside, type Scan, scanModels } from "./discovery.js";
import { scanStore, type StoreLocation } from "./stores/index.js";

export interface Catalog extends Scan {
  /** Real paths of every existing models directory and store root, in order. */
  roots: string[];
  /** The models by key (the first found, when two names reach one file). */
  byKey: Map<string, FoundModel>;
}

/** Scans the directories and store locations and merges them (see the module comment). */
export async function scanCatalog(dirs: readonly string[], stores: readonly StoreLocation[]): Promise<Catalog> {
  const scans = await Promise.all([...dirs.map((dir) => scanModels(dir)), ...stores.map(scanStore)]);
  const first = scans[0];
  const catalog: Catalog = {
    models: [],
    escaping: new Map(),
    directories: new Map(),
    root: first?.root ?? null,
    roots: scans.flatMap((s) => (s.root === null ? [] : [s.root])),
    byKey: new Map(),
  };
  const taken = new Set<string>();
  const add = (model: FoundModel) => {
    if (taken.has(model.name)) return;
    taken.add(model.name);
    catalog.models.push(model);
  };
  for (const scan of scans) {
    for (const [dir, mtime] of scan.directories) catalog.directories.set(dir, mtime);
    for (const model of scan.models) add(model);
    for (const [name, target] of scan.escaping) {
      if (catalog.roots.some((root) => isInside(root, target)))
        add({ name, path: target, key: target, format: formatOf(name) ?? "gguf" });
      else catalog.escaping.set(name, target);
    }
  }
  // A link into a store reaches a blob the store knows a digest for: the link's model is checked like the store's.
  const digests = new Map(catalog.models.flatMap((m) => (m.sha256 ? [[m.key, m.sha256] as const] : [])));
  for (const model of catalog.models) {
    const sha256 = digests.get(model.key);
    if (sha256 && !model.sha256) model.sha256 = sha256;
  }
  catalog.models.sort((a, b) => a.name.localeCompare(b.name));
  for (const model of catalog.models) if (!catalog.byKey.has(model.key)) catalog.byKey.set(model.key, model);
  return catalog;
}
