/**
 * Lint: kernel paths are generator functions (KGen), composed with `yield*`; hot paths return
 * KMaybe (a result, or a generator the caller must start), so a dropped one is caught too. A
 * call whose generator is created and dropped (an expression statement), or a `yield gen` where
 * `yield* gen` was meant, silently does nothing: this check finds both, with the type checker, in
 * every workspace package, app and example. Run by `pnpm lint`.
 */
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import ts from 'typescript';

const root = new URL('..', import.meta.url).pathname;
const dirs = ['packages', 'apps', 'examples'].flatMap((d) =>
  readdirSync(join(root, d))
    .map((x) => join(root, d, x))
    .filter((p) => statSync(p).isDirectory()),
);

function isGeneratorType(_checker: ts.TypeChecker, t: ts.Type): boolean {
  const types = t.isUnion() ? t.types : [t];
  return types.some((x) => {
    const sym = x.getSymbol() ?? x.aliasSymbol;
    const name = sym?.getName();
    return name === 'Generator' || name === 'KGen';
  });
}

let problems = 0;
for (const dir of dirs) {
  const configPath = join(dir, 'tsconfig.json');
  try {
    statSync(configPath);
  } catch {
    continue;
  }
  const cfg = ts.getParsedCommandLineOfConfigFile(
    configPath,
    {},
    {
      ...ts.sys,
      onUnRecoverableConfigFileDiagnostic: () => {},
    },
  );
  if (!cfg) continue;
  const program = ts.createProgram(cfg.fileNames, cfg.options);
  const checker = program.getTypeChecker();
  for (const sf of program.getSourceFiles()) {
    if (!sf.fileName.startsWith(dir) || sf.fileName.includes('node_modules')) continue;
    const visit = (node: ts.Node): void => {
      if (ts.isExpressionStatement(node)) {
        let e = node.expression;
        while (ts.isParenthesizedExpression(e)) e = e.expression;
        if (ts.isCallExpression(e) && isGeneratorType(checker, checker.getTypeAtLocation(e))) {
          const { line } = sf.getLineAndCharacterOfPosition(node.getStart());
          console.error(
            `${relative(root, sf.fileName)}:${line + 1}: generator created and dropped (missing yield*?): ${e.getText().slice(0, 80)}`,
          );
          problems++;
        }
      }
      if (ts.isYieldExpression(node) && !node.asteriskToken && node.expression) {
        if (isGeneratorType(checker, checker.getTypeAtLocation(node.expression))) {
          const { line } = sf.getLineAndCharacterOfPosition(node.getStart());
          console.error(
            `${relative(root, sf.fileName)}:${line + 1}: 'yield' of a generator (meant 'yield*'?)`,
          );
          problems++;
        }
      }
      ts.forEachChild(node, visit);
    };
    visit(sf);
  }
}
if (problems) {
  console.error(`check-generators: ${problems} problem(s)`);
  process.exit(1);
}
console.log('check-generators: no dropped generators');
