import { testConfig } from '../../scripts/vitest-base.mjs';

export default testConfig();
