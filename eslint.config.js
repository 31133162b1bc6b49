// Lint rules for the whole tree. Type-aware rules are left to `tsc`; this catches
// what the compiler does not: floating promises aside, mostly unused code and
// accidental `any`.
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', '.cache/**', '**/assembly/**', '**/gen/**', 'build/**'] },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-restricted-syntax': ['error', { selector: 'ExportDefaultDeclaration', message: 'No default exports (STYLE.md).' }],
    },
  },
  { files: ['eslint.config.js', '*.config.ts'], rules: { 'no-restricted-syntax': 'off' } },
);
