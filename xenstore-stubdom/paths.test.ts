import { describe, expect, it } from 'vitest';
import { canonicalize, isSubPath, isValidNodeName, parentOf } from './paths.js';
import { permFor, parsePerm, PERM_READ, PERM_WRITE } from './perms.js';

describe('paths', () => {
  it('accepts_root_and_ordinary_paths', () => {
    expect(isValidNodeName('/', 2048)).toBe(true);
    expect(isValidNodeName('/local/domain/1/device/vif-0_a@b', 2048)).toBe(true);
  });

  it('rejects_relative_trailing_slash_double_slash_and_bad_characters', () => {
    for (const p of ['a', '/a/', '/a//b', '/a.b', '/a b', '/a\nb']) expect(isValidNodeName(p, 2048)).toBe(false);
  });

  it('rejects_path_longer_than_absolute_limit_even_under_local_domain', () => {
    expect(isValidNodeName(`/local/domain/1/${'a'.repeat(3100)}`, 2048)).toBe(false);
  });

  it('canonicalizes_relative_paths_against_home_only', () => {
    expect(canonicalize('x', '/local/domain/3')).toBe('/local/domain/3/x');
    expect(canonicalize('/x', '/local/domain/3')).toBe('/x');
    expect(canonicalize('@releaseDomain', '/local/domain/3')).toBe('@releaseDomain');
  });

  it('sub_path_respects_component_boundaries', () => {
    expect(isSubPath('/a/b', '/a')).toBe(true);
    expect(isSubPath('/ab', '/a')).toBe(false);
    expect(isSubPath('/a', '/')).toBe(true);
    expect(parentOf('/a')).toBe('/');
  });
});

describe('perms', () => {
  const perms = [parsePerm('r5'), parsePerm('w7'), parsePerm('n8')];

  it('owner_and_dom0_get_everything', () => {
    expect(permFor({ domid: 5 }, perms) & PERM_WRITE).toBeTruthy();
    expect(permFor({ domid: 0 }, perms) & PERM_WRITE).toBeTruthy();
  });

  it('listed_domain_gets_its_entry_and_others_the_owner_default', () => {
    expect(permFor({ domid: 7 }, perms)).toBe(PERM_WRITE);
    expect(permFor({ domid: 8 }, perms)).toBe(0);
    expect(permFor({ domid: 9 }, perms)).toBe(PERM_READ);
  });

  it('target_domain_inherits_targets_rights', () => {
    expect(permFor({ domid: 9, target: 5 }, perms) & PERM_WRITE).toBeTruthy();
  });
});
