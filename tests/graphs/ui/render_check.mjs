// What a browser does with POST /ui/{graph}'s snippet once LoadExternalComponent has put it in a shadow
// root: run the bundle, then its script's onload, with the client's globals (the component store and the
// module table) stood in for. Prints the component rendered for the props given, as JSON.
//   node render_check.mjs BUNDLE.js ONLOAD SHADOW_ROOT_ID PROPS_JSON
import { readFileSync } from "node:fs";
import vm from "node:vm";

const [bundlePath, onload, shadowRootId, propsJson] = process.argv.slice(2);
const element = (type, props) => ({ type, props });
const modules = { "react/jsx-runtime": { jsx: element, jsxs: element, Fragment: "Fragment" }, react: {} };
const shadowRoot = { children: [], appendChild(child) { this.children.push(child); } };
const found = {};
const context = {
  document: {
    getElementById: (id) => (id === shadowRootId ? { shadowRoot } : null),
    createElement: (tag) => ({ tag }),
  },
};
context.window = context;
context[Symbol.for("LGUI_REQUIRE")] = (name) => {
  if (name in modules) return modules[name];
  throw new Error(`Unknown module: ${name}`);
};
context[Symbol.for("LGUI_EXT_STORE")] = {
  respond(id, component, target) {
    const tree = component(JSON.parse(propsJson));
    const children = [tree.props.children].flat();
    Object.assign(found, {
      shadowRootId: id,
      target: target.tag,
      mountedInShadowRoot: shadowRoot.children.includes(target),
      element: tree.type,
      className: tree.props.className,
      text: children.join(""),
    });
  },
};
vm.createContext(context);
vm.runInContext(readFileSync(bundlePath, "utf-8"), context);
vm.runInContext(onload, context);
console.log(JSON.stringify(found));
